"""Python traceback parsing, shared by the repro check and the Claude fix loop.

Matching an expected error and mapping frames to the repository: runner.core.errormatch.

Pure functions on text. The parser reads output the way a person does: it finds the
``Traceback (most recent call last):`` blocks among other lines, follows chained
exceptions, exception groups and ``SyntaxError`` blocks, and reports the last
exception with the chain that led to it.

Multi-line messages: an exception's message is its ``Type: message`` line plus the
lines that follow it, until the output clearly moves on: a blank line followed by
another blank line, a chain separator, a new traceback or ``File "…"`` frame, a line
that looks like a log record (a timestamp or a level name at its start), a test-runner
rule (``===``/``___``), an ``exit N`` line, or the end of output (at most 100 lines).
Program output printed right after a message, with nothing that sets it apart, can
still end up in the message; matching is by prefix, so that never changes a match.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from runner.models.tracebacks import (
    ChainRelation,
    ExceptionInfo,
    ExpectedError,
    Frame,
    RepoFrame,
    SyntaxLocation,
    Traceback,
)

__all__ = [
    "ExceptionInfo",
    "ExpectedError",
    "Frame",
    "RepoFrame",
    "SyntaxLocation",
    "Traceback",
    "iter_exceptions",
    "parse_all_exceptions",
    "parse_last_exception",
    "parse_traceback",
]

# --------------------------------------------------------------------------- patterns

_TB_HEADER = re.compile(r"^(?P<prefix>.*?)Traceback \(most recent call last\):\s*$")
_GROUP_HEADER = re.compile(
    r"^(?P<indent> *)\+ Exception Group Traceback \(most recent call last\):\s*$"
)
# A group with no traceback of its own (``except*`` re-raise) starts with its type line.
_GROUP_BARE_START = re.compile(r"^(?P<indent> *)\| (?:[\w<>]+\.)*\w*ExceptionGroup:")
_FRAME = re.compile(r'^\s*File "(?P<path>.*)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$')
_TYPE = r"[A-Za-z_][\w]*(?:\.[A-Za-z_<][\w<>]*)*"
_EXC_LINE = re.compile(rf"^(?P<type>{_TYPE})(?::(?: ?(?P<msg>.*))?)?$")
_CARET = re.compile(r"^\s*[\^~]+[\s\^~]*$")
_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"
_LOG_RECORD = re.compile(
    r"""^\s*(?:
        \[?\d{1,4}[-/.:]\d{1,2}[-/.:]\d{1,4}          # a date or a time
      | \[\d{1,2}/[A-Za-z]{3}/\d{4}                    # [01/Jan/2024 …] (access logs)
      | \[?(?:DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\b[\]:\s]  # a level name
      | (?:={3,}|_{3,})(?:\s|$)                        # pytest's section rules
      | [Ee]xit(?:\s+(?:code|status))?:?\s+-?\d+\s*$    # "exit 0"
      | Process\ finished\ with\ exit\ code
    )""",
    re.VERBOSE,
)
_MAX_MESSAGE_LINES = 100
_SYNTAX_TYPES = ("SyntaxError", "IndentationError", "TabError")
_EXCEPTION_NAME = re.compile(r"(?:Error|Exception|Exit|Interrupt|Warning|Group|Iteration)$")


# --------------------------------------------------------------------------- internals


@dataclass
class _Exc:
    """An exception while parsing: line positions kept to attach group members."""

    type: str
    message: str
    frames: list[Frame]
    syntax: SyntaxLocation | None
    exc_index: int
    members: list[list[_Exc]] = field(default_factory=list)
    linked_by: ChainRelation | None = None


@dataclass
class _Segment:
    """A parsed block: lines [start, end) and the chain it holds, oldest first."""

    start: int
    end: int
    chain: list[_Exc]


class _Lines:
    """A read-only view of lines with a per-line prefix (log or container prefix) removed."""

    def __init__(self, lines: Sequence[str], prefix: re.Pattern[str] | None) -> None:
        self._lines = lines
        self._prefix = prefix

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: int) -> str:
        line = self._lines[index]
        if self._prefix is not None:
            m = self._prefix.match(line)
            if m:
                return line[m.end() :]
        return line

    def prefixed(self, index: int) -> bool:
        """Whether the raw line carries the prefix (always true without one)."""
        return self._prefix is None or self._prefix.match(self._lines[index]) is not None


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


def _norm(text: str) -> str:
    """Collapse whitespace, so a message prefix matches across line breaks."""
    return " ".join(text.split())


def _prefix_pattern(prefix: str) -> re.Pattern[str] | None:
    """A pattern for the text printed before ``Traceback`` on its line, digits generalised.

    Container and log prefixes carry timestamps that change from line to line.
    """
    if prefix.endswith("Exception Group "):
        prefix = prefix[: -len("Exception Group ")]
    if not prefix:
        return None
    parts = [
        re.escape(part) if not part.isdigit() else r"\d+" for part in re.split(r"(\d+)", prefix)
    ]
    return re.compile("".join(parts))


def _is_stop_line(view: _Lines, j: int) -> bool:
    line = view[j]
    stripped = line.strip()
    return (
        not view.prefixed(j)
        or _TB_HEADER.match(line) is not None
        or _GROUP_HEADER.match(line) is not None
        or _FRAME.match(line) is not None
        or stripped in (_CAUSE, _CONTEXT)
        or _LOG_RECORD.match(line) is not None
    )


def _read_message(view: _Lines, j: int, first: str) -> tuple[str, int]:
    """Read a message starting at line j (already split off as `first`); return it and the end."""
    lines = [first]
    k = j + 1
    while k < len(view) and len(lines) <= _MAX_MESSAGE_LINES:
        if _is_stop_line(view, k):
            break
        # A single blank line can sit inside a message (Flask's); two end it, and so
        # does a blank line before anything that would end it anyway.
        blank_ends = view[k].strip() == "" and (
            k + 1 >= len(view) or view[k + 1].strip() == "" or _is_stop_line(view, k + 1)
        )
        if blank_ends:
            break
        lines.append(view[k])
        k += 1
    return "\n".join(lines).rstrip(), k


def _parse_body(view: _Lines, j: int, *, headerless: bool = False) -> tuple[_Exc | None, int]:
    """Parse frames and the exception line from line j; return it and the end line.

    When no exception line follows, return None and where parsing stopped: no block can
    start on the frame and indented lines before that point.

    Without a header, the exception line must look like one (a syntax error after its
    location, else a ``Type: message`` line or a type named like an exception).
    """
    frames: list[Frame] = []
    syntax: SyntaxLocation | None = None
    n = len(view)
    while j < n:
        line = view[j]
        m = _FRAME.match(line)
        if m:
            j += 1
            text: str | None = None
            column: int | None = None
            if j < n and view[j][:1].isspace() and not _FRAME.match(view[j]):
                raw = view[j]
                text = raw.strip()
                j += 1
                if j < n and _CARET.match(view[j]):
                    caret = view[j]
                    indent = len(raw) - len(raw.lstrip())
                    column = caret.index(next(c for c in caret if c in "^~")) - indent + 1
            # Caret lines, "[Previous line repeated …]", locals dumps: indented, skipped.
            while j < n and view[j][:1].isspace() and not _FRAME.match(view[j]):
                j += 1
            if m.group("func") is None:
                syntax = SyntaxLocation(
                    path=m.group("path"), line=int(m.group("line")), text=text, column=column
                )
            else:
                frames.append(
                    Frame(
                        path=m.group("path"),
                        line=int(m.group("line")),
                        function=m.group("func"),
                        source=text,
                    )
                )
            continue
        if line[:1].isspace() or line == "":
            j += 1
            continue
        break
    m = _EXC_LINE.match(view[j]) if j < n else None
    if m is None:
        return None, j
    if headerless:
        short = _short(m.group("type"))
        if (
            (syntax is not None and short not in _SYNTAX_TYPES)
            or (syntax is None and not frames)
            or (m.group("msg") is None and not _EXCEPTION_NAME.search(short))
        ):
            return None, j
    message, end = _read_message(view, j, m.group("msg") or "")
    exc = _Exc(type=m.group("type"), message=message, frames=frames, syntax=syntax, exc_index=j)
    return exc, end


def _group_start(lines: Sequence[str], i: int) -> int | None:
    """Indent of an exception-group box starting at line i, or None."""
    m = _GROUP_HEADER.match(lines[i])
    if m:
        return len(m.group("indent"))
    m = _GROUP_BARE_START.match(lines[i])
    if m and i + 1 < len(lines):
        indent = m.group("indent")
        if lines[i + 1].startswith(indent + "+-+"):
            return len(indent)
    return None


def _ends_box(line: str) -> bool:
    """A line that cannot continue a message inside a box: the box is over."""
    return (
        _TB_HEADER.match(line) is not None
        or _GROUP_HEADER.match(line) is not None
        or _LOG_RECORD.match(line) is not None
        or line.strip() in (_CAUSE, _CONTEXT)
    )


def _box_resumes(lines: Sequence[str], i: int, pad: str) -> bool:
    """Whether box lines follow the blank lines from i on (a blank line inside a message)."""
    for j in range(i, min(len(lines), i + _MAX_MESSAGE_LINES)):
        if lines[j].strip():
            return lines[j].startswith(pad + "|") or lines[j].startswith(pad + "+-+")
    return False


def _parse_box(lines: Sequence[str], start: int, k: int) -> tuple[list[_Exc], int]:
    """Parse an exception-group box drawn at indent k; return its chain and end line.

    The box's own lines (``| …`` at indent k) form a flat traceback text; the numbered
    sub-blocks at indent k+2 are its members, each a box of its own at indent 0.
    """
    pad, sub = " " * k, " " * (k + 2)
    flat: list[str] = []
    member_sets: list[tuple[int, list[list[str]]]] = []
    i = start
    # Every box is one traceback text, but a member that was never raised is printed as a
    # bare "Type: message" line: a header in front makes both parse the same way (a
    # second, real header right after it just starts the block one line later).
    flat.append("Traceback (most recent call last):")
    if _GROUP_HEADER.match(lines[i]):
        i += 1
    state = "top"
    members: list[list[str]] = []
    loose = 0  # consecutive lines without the box prefix
    n = len(lines)
    while i < n:
        line = lines[i]
        rest = line[k + 2 :] if state == "member" and line.startswith(sub) else None
        if rest is not None:
            loose = 0
            if re.match(r"^\+-+ (?:\d+|\.\.\.) -+\s*$", rest):
                members.append([])
            elif re.match(r"^\+-{10,}\s*$", rest):
                member_sets.append((len(flat), members))
                members = []
                state = "after"
            else:
                members[-1].append(rest)
        elif line.startswith(pad + "+-+") and state == "top":
            loose = 0
            state = "member"
            members = [[]]
        elif line.startswith(pad + "|"):
            loose = 0
            body = line[k + 1 :]
            body = body[1:] if body.startswith(" ") else body
            if body.strip() == "Exception Group Traceback (most recent call last):":
                body = "Traceback (most recent call last):"
            flat.append(body)
            state = "top"
        else:
            # A line without the box prefix: CPython prints the continuation lines of a
            # multi-line message that way. Anything else ends the box (it may be cut off).
            loose += 1
            blank = line.strip() == ""
            if (
                state == "after"
                or loose > _MAX_MESSAGE_LINES
                or (not blank and _ends_box(line))
                or (blank and state == "top" and not _box_resumes(lines, i + 1, pad))
            ):
                break
            (members[-1] if state == "member" else flat).append(line)
        i += 1
    if state == "member" and members:
        member_sets.append((len(flat), members))

    segments = _scan(flat)
    chain = _link(flat, segments)
    excs = [exc for seg in segments for exc in seg.chain]
    for position, sets in member_sets:
        owner = max(
            (e for e in excs if e.exc_index < position), key=lambda e: e.exc_index, default=None
        )
        if owner is None:
            continue
        for region in sets:
            if region:
                sub_chain, _ = _parse_box(region, 0, 0)
                if sub_chain:
                    owner.members.append(sub_chain)
    return chain, i


def _scan(lines: Sequence[str]) -> list[_Segment]:
    """Every traceback block in `lines`, in order; blocks never overlap."""
    segments: list[_Segment] = []
    plain = _Lines(lines, None)
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        k = _group_start(lines, i)
        if k is not None:
            chain, end = _parse_box(lines, i, k)
            if chain:
                segments.append(_Segment(i, max(end, i + 1), chain))
                i = max(end, i + 1)
                continue
            i += 1
            continue
        m = _TB_HEADER.match(line)
        if m:
            prefix = _prefix_pattern(m.group("prefix"))
            # A prefix only on the header line ("… raised: Traceback …") is not a per-line
            # log prefix: the block below it is plain.
            if prefix is not None and (i + 1 >= n or not prefix.match(lines[i + 1])):
                prefix = None
            view = _Lines(lines, prefix)
            exc, end = _parse_body(view, i + 1)
        elif _FRAME.match(line):
            # A block without its header: a SyntaxError raised while compiling the main
            # script, or a traceback whose head was cut off by an output cap.
            exc, end = _parse_body(plain, i, headerless=True)
        else:
            i += 1
            continue
        if exc is not None:
            segments.append(_Segment(i, end, [exc]))
        # Skipping to where parsing stopped keeps the scan linear on hostile output.
        i = max(end, i + 1)
    return segments


def _chains(lines: Sequence[str], segments: list[_Segment]) -> list[list[_Exc]]:
    """Group segments into chains: a segment joins the one before it when only a chain
    separator (and blank lines) stands between them. Each chain is oldest first."""
    chains: list[list[_Exc]] = []
    for idx, seg in enumerate(segments):
        relation: ChainRelation | None = None
        if idx > 0:
            gap = [line.strip() for line in lines[segments[idx - 1].end : seg.start]]
            gap = [line for line in gap if line]
            if len(gap) == 1 and gap[0].endswith(_CAUSE):
                relation = "cause"
            elif len(gap) == 1 and gap[0].endswith(_CONTEXT):
                relation = "context"
        if relation is None:
            chains.append(list(seg.chain))
        else:
            chains[-1][-1].linked_by = relation
            chains[-1].extend(seg.chain)
    return chains


def _link(lines: Sequence[str], segments: list[_Segment]) -> list[_Exc]:
    """The chain that ends with the last segment (empty when there is none)."""
    chains = _chains(lines, segments)
    return chains[-1] if chains else []


def _to_info(exc: _Exc, chain: Sequence[_Exc] = ()) -> ExceptionInfo:
    members = [_finish(sub_chain) for sub_chain in exc.members]
    return ExceptionInfo(
        type=exc.type,
        short_type=_short(exc.type),
        message=exc.message,
        frames=exc.frames,
        syntax=exc.syntax,
        is_group=bool(members) or _short(exc.type).endswith("ExceptionGroup"),
        exceptions=members,
        chain=[_to_info(earlier) for earlier in chain],
        linked_by=exc.linked_by,
    )


def _finish(chain: Sequence[_Exc]) -> ExceptionInfo:
    """The last exception of a chain, carrying the earlier ones."""
    return _to_info(chain[-1], chain[:-1])


def _split(output: str) -> list[str]:
    return output.replace("\r\n", "\n").replace("\r", "\n").split("\n")


# --------------------------------------------------------------------------- public API


def parse_last_exception(output: str) -> ExceptionInfo | None:
    """The last exception of the last traceback in `output`, with its chain; None if none."""
    lines = _split(output)
    chain = _link(lines, _scan(lines))
    return _finish(chain) if chain else None


def parse_all_exceptions(output: str) -> list[ExceptionInfo]:
    """The final exception of every independent traceback in `output`, in order."""
    lines = _split(output)
    return [_finish(chain) for chain in _chains(lines, _scan(lines))]


def parse_traceback(text: str) -> Traceback:
    """Parse one traceback as Python prints it; ValueError when `text` holds none."""
    info = parse_last_exception(text)
    if info is None:
        raise ValueError("no Python traceback found in the text")
    return Traceback(frames=info.frames, exception=info)


def iter_exceptions(info: ExceptionInfo) -> Iterator[ExceptionInfo]:
    """`info`, every exception of its chain and every group member, depth first."""
    for earlier in info.chain:
        yield from iter_exceptions(earlier)
    yield info
    for member in info.exceptions:
        yield from iter_exceptions(member)
