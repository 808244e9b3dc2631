"""Exceptions as Python printed them: the types the traceback parser and its users share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.models.base import Model

__all__ = [
    "ChainRelation",
    "ExceptionInfo",
    "ExpectedError",
    "Frame",
    "RepoFrame",
    "SyntaxLocation",
    "Traceback",
]

ChainRelation = Literal["cause", "context"]


class Frame(Model):
    """One ``File "…", line N, in func`` entry of a traceback."""

    path: str = Field(description="File path exactly as printed.")
    line: int = Field(description="Line number.")
    function: str = Field(description="Function name, '<module>' for module level.")
    source: str | None = Field(default=None, description="The source line, stripped.")


class SyntaxLocation(Model):
    """Where a SyntaxError points: the ``File "…", line N`` entry without a function."""

    path: str = Field(description="File path exactly as printed.")
    line: int = Field(description="Line number.")
    text: str | None = Field(default=None, description="The offending source line, stripped.")
    column: int | None = Field(
        default=None, description="1-based column of the first caret, relative to the text."
    )


class ExceptionInfo(Model):
    """One exception as Python printed it, with the chain that led to it."""

    type: str = Field(description="Type as printed, with its module path when shown.")
    short_type: str = Field(description="Last component of the type.")
    message: str = Field(default="", description="Message; may span lines.")
    frames: list[Frame] = Field(
        default_factory=list, description="Frames of this exception, outermost first."
    )
    syntax: SyntaxLocation | None = Field(
        default=None, description="Location of a SyntaxError (or subclass)."
    )
    is_group: bool = Field(default=False, description="An ExceptionGroup or subclass.")
    exceptions: list[ExceptionInfo] = Field(
        default_factory=list, description="Sub-exceptions of a group, in printed order."
    )
    chain: list[ExceptionInfo] = Field(
        default_factory=list,
        description="Earlier exceptions of the chain, oldest first (each with an empty chain).",
    )
    linked_by: ChainRelation | None = Field(
        default=None,
        description=(
            "For chain members: how the next exception relates to this one "
            "('cause': raise … from; 'context': raised while handling it)."
        ),
    )

    @property
    def summary(self) -> str:
        """``Type: first line of the message`` (just ``Type`` for an empty message)."""
        first = self.message.splitlines()[0].strip() if self.message.strip() else ""
        return f"{self.type}: {first}" if first else self.type


class Traceback(Model):
    """One printed traceback: its frames and its (last) exception with the chain."""

    frames: list[Frame] = Field(description="Frames of the last exception, outermost first.")
    exception: ExceptionInfo = Field(description="The last exception, with its chain.")


class ExpectedError(Model):
    """An expected error, as given by ``Type`` or ``Type: message prefix``."""

    type: str = Field(description="Type as given (a dotted module path is allowed).")
    short_type: str = Field(description="Last component of the type: what is compared.")
    message: str | None = Field(
        default=None, description="Message prefix, whitespace-normalised; None: any message."
    )


class RepoFrame(Model):
    """A frame mapped to a file of the repository (an edit target)."""

    frame: Frame = Field(description="The frame as printed.")
    repo_path: str = Field(description="Repository-relative POSIX path.")
