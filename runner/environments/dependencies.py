"""What a repository needs installed, and that set resolved to exact pins on the host.

The public face of detection (detection.py, locks.py, project.py, requirements.py),
resolution (resolution.py) and the host's tools (hosttools.py).
"""

from runner.environments.detection import detect
from runner.environments.hosttools import host_index_args, uv_binary
from runner.environments.plans import TEST_GROUPS, TOOLS, InstallPlan, PlanKind, ResolvedEnvironment
from runner.environments.resolution import compile_requirements, resolve

__all__ = [
    "TEST_GROUPS",
    "TOOLS",
    "InstallPlan",
    "PlanKind",
    "ResolvedEnvironment",
    "compile_requirements",
    "detect",
    "host_index_args",
    "resolve",
    "uv_binary",
]
