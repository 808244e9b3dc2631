"""One exception root for the runner.

Infrastructure errors (the runner could not decide) are kept apart from candidate
faults (the patch is bad), so the pipeline picks ``error`` or ``rejected`` from the
exception's type, never by reading log text.
"""

from __future__ import annotations


class RunnerError(Exception):
    """Root of every error the runner raises on purpose."""

    exit_code: int = 2


class ConfigError(RunnerError, ValueError):
    """runner.toml, a policy file or an environment override is invalid."""


class UsageError(RunnerError, ValueError):
    """A command was called with arguments that cannot work."""


class InfrastructureError(RunnerError):
    """The runner itself could not do its work; the verdict is ``error``."""


class EngineUnavailableError(InfrastructureError, ConnectionError):
    """The Docker engine does not answer."""


class ImageBuildError(InfrastructureError):
    """A base or environment image could not be built; carries the failing step's log."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class ResolutionError(ImageBuildError):
    """The repository's dependencies could not be resolved or downloaded on the host."""


class SandboxError(InfrastructureError):
    """A container could not be created, started or read (not the candidate's fault)."""


class WorkspaceError(InfrastructureError):
    """The repository could not be cloned, fetched or checked out."""


class CandidateError(RunnerError):
    """The candidate (or the job's input) is at fault; the verdict is ``rejected``."""

    exit_code = 1


class PatchError(CandidateError):
    """A patch is malformed, unsafe, too large, or does not apply."""

    def __init__(self, message: str, check: str = "applies") -> None:
        super().__init__(message)
        self.check = check


class JobInputError(RunnerError, ValueError):
    """A job names something the runner will not touch (a URL, a revision, a path)."""


class MissingApiKeyError(ConfigError):
    """No API key in [fixer] api_key or ANTHROPIC_API_KEY."""


class ModelApiError(InfrastructureError):
    """The Messages API failed after the SDK's retries."""
