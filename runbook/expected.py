"""Expected output: match a step's output against the block that shows it.

The expected text comes from an ``output`` or ``text`` block right after a
step, or from the output lines of a ``console`` block. Both sides are
compared line by line after ``normalize_lines``: ANSI escape sequences are
removed, a carriage return overwrites the start of its line as on a
terminal, trailing whitespace and trailing empty lines are dropped.

In the expected text:

- a line that is exactly ``...`` matches zero or more whole lines;
- ``...`` inside a line matches any text within that one line;
- with ``regex``, every other line is a Python regular expression that must
  match the whole output line (``re.fullmatch``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

WILDCARD = "..."

#: CSI sequences (colours, cursor moves), OSC sequences (window titles,
#: hyperlinks) ended by BEL or ST, and the other two-byte escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
)
#: Diff lines shown at most; a longer diff ends with a line that counts the rest.
MAX_DIFF_LINES = 200
#: Expected lines times output lines above which the diff is difflib's plain
#: line diff instead of an alignment that understands wildcards.
MAX_ALIGNMENT_CELLS = 1_000_000
_CONTEXT = 3


class ExpectedOutputError(ValueError):
    """A line of an expected output block is not a valid regular expression.

    ``line`` is the 1-based line within the block.
    """

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class _Line:
    """One expected line: a wildcard, a literal, or a compiled pattern."""

    text: str
    wildcard: bool = False
    pattern: re.Pattern[str] | None = None
    #: The literal pieces between inline ``...`` wildcards; empty for none.
    pieces: tuple[str, ...] = ()

    def matches(self, actual: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(actual) is not None
        if self.pieces:
            return _glob_matches(self.pieces, actual)
        return self.text == actual


def _glob_matches(pieces: Sequence[str], actual: str) -> bool:
    """Return whether ``actual`` is the pieces in order with any text between them.

    The first piece must start the line and the last must end it. Each middle
    piece is taken at its leftmost place after the previous one: with only
    match-anything gaps, an earlier place never leaves less room for the
    rest, so the search needs no backtracking and stays linear in the line.
    """
    first, *middle, last = pieces
    if len(first) + len(last) > len(actual):
        return False
    if not actual.startswith(first) or not actual.endswith(last):
        return False
    position, end = len(first), len(actual) - len(last)
    for piece in middle:
        found = actual.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


def normalize_lines(text: str) -> list[str]:
    """Return ``text`` as a terminal would show it, one string per line.

    Escape sequences are removed, ``\\r\\n`` ends a line, a lone ``\\r``
    returns to the start of the line (later text overwrites earlier text),
    and trailing whitespace and trailing empty lines are dropped.
    """
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    lines = [_overwrite(line).rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _overwrite(line: str) -> str:
    if "\r" not in line:
        return line
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part) :]
    return shown


def compile_expected(expected: str, regex: bool = False) -> list[_Line]:
    """Turn expected text into line matchers.

    Raises ExpectedOutputError, with the line in the block, when ``regex`` is
    set and a line is not a valid regular expression.
    """
    compiled = []
    for number, line in enumerate(normalize_lines(expected), 1):
        if line == WILDCARD:
            compiled.append(_Line(line, wildcard=True))
        elif regex:
            try:
                compiled.append(_Line(line, pattern=re.compile(line)))
            except re.error as error:
                raise ExpectedOutputError(
                    number,
                    f"line {number} of the output block is not a valid regular "
                    f"expression: {error.msg} at column {(error.colno or 1)}: "
                    f"{line!r}; escape the character with a backslash, or drop "
                    "regex to match the text literally",
                ) from None
        elif WILDCARD in line:
            compiled.append(_Line(line, pieces=tuple(line.split(WILDCARD))))
        else:
            compiled.append(_Line(line))
    return compiled


def output_matches(expected: str, actual: str, regex: bool = False) -> bool:
    """Return whether ``actual`` output matches the ``expected`` text."""
    return _matches(compile_expected(expected, regex), normalize_lines(actual))


def _matches(expected: Sequence[_Line], actual: Sequence[str]) -> bool:
    """Match lines against matchers where a wildcard takes any number of lines.

    On a mismatch the search goes back to the last wildcard and lets it take
    one more line, as glob matching does for ``*``. Every other matcher takes
    exactly one line, which is why going back to the last wildcard suffices.
    """
    i = j = 0
    star = -1
    star_j = 0
    while j < len(actual):
        if i < len(expected) and expected[i].wildcard:
            star, star_j = i, j
            i += 1
        elif i < len(expected) and expected[i].matches(actual[j]):
            i += 1
            j += 1
        elif star >= 0:
            star_j += 1
            i, j = star + 1, star_j
        else:
            return False
    while i < len(expected) and expected[i].wildcard:
        i += 1
    return i == len(expected)


def check_output(
    expected: str,
    actual: str,
    regex: bool = False,
    expected_label: str = "expected",
    actual_label: str = "actual",
) -> str | None:
    """Return None when ``actual`` matches ``expected``, else a unified diff.

    The diff runs from the expected lines (``-``) to the output lines
    (``+``). Lines that a wildcard, ``...`` or a regular expression matched
    appear as context, in their output form, so only real differences are
    marked.
    """
    matchers = compile_expected(expected, regex)
    lines = normalize_lines(actual)
    if _matches(matchers, lines):
        return None
    if (len(matchers) + 1) * (len(lines) + 1) > MAX_ALIGNMENT_CELLS:
        body = list(
            difflib.unified_diff(
                [m.text for m in matchers], lines, lineterm="", n=_CONTEXT
            )
        )[2:]
    else:
        body = _hunks(_align(matchers, lines))
    return _render(body, expected_label, actual_label)


# --- The diff ---------------------------------------------------------------------

#: One diff line: its mark (" ", "-" or "+"), its text, and its 1-based line
#: number in the expected text and in the output (0 where it has none).
_Op = tuple[str, str, int, int]


def _align(expected: Sequence[_Line], actual: Sequence[str]) -> list[_Op]:
    """Return the alignment with the fewest changed lines.

    A wildcard takes output lines at no cost and a matched line costs
    nothing. A removed expected line, an added output line, and an expected
    line replaced by an output line cost one each. Counting a replacement as
    one change, not two, makes ``status ok`` against ``status failed`` show
    as a replaced line even right after a wildcard, which could otherwise
    take ``status failed`` at no cost. ``cost[i][j]`` is the cost of aligning
    ``expected[i:]`` with ``actual[j:]``.
    """
    n, m = len(expected), len(actual)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for j in range(m - 1, -1, -1):
        cost[n][j] = cost[n][j + 1] + 1
    for i in range(n - 1, -1, -1):
        matcher = expected[i]
        row, below = cost[i], cost[i + 1]
        row[m] = below[m] + (0 if matcher.wildcard else 1)
        for j in range(m - 1, -1, -1):
            if matcher.wildcard:
                row[j] = min(below[j], row[j + 1])
                continue
            best = min(below[j], row[j + 1], below[j + 1]) + 1
            if below[j + 1] < best and matcher.matches(actual[j]):
                best = below[j + 1]
            row[j] = best

    ops: list[_Op] = []
    i = j = 0
    while i < n or j < m:
        line = expected[i] if i < n else None
        if line is not None and line.wildcard:
            # The wildcard ends as early as it can, so that the lines after
            # it are matched rather than taken by it.
            if j == m or cost[i][j] == cost[i + 1][j]:
                i += 1
            else:
                ops.append((" ", actual[j], 0, j + 1))
                j += 1
        elif (
            line is not None
            and j < m
            and cost[i][j] == cost[i + 1][j + 1]
            and line.matches(actual[j])
        ):
            ops.append((" ", actual[j], i + 1, j + 1))
            i += 1
            j += 1
        elif line is not None and j < m and cost[i][j] == cost[i + 1][j + 1] + 1:
            ops.append(("-", line.text, i + 1, 0))
            ops.append(("+", actual[j], 0, j + 1))
            i += 1
            j += 1
        elif line is not None and cost[i][j] == cost[i + 1][j] + 1:
            ops.append(("-", line.text, i + 1, 0))
            i += 1
        else:
            ops.append(("+", actual[j], 0, j + 1))
            j += 1
    return _removed_first(ops)


def _removed_first(ops: list[_Op]) -> list[_Op]:
    """Put the removed lines of each run of changes before the added ones."""
    result: list[_Op] = []
    run: list[_Op] = []
    for op in [*ops, (" ", "", 0, 0)]:
        if op[0] != " ":
            run.append(op)
            continue
        result += [change for change in run if change[0] == "-"]
        result += [change for change in run if change[0] == "+"]
        run = []
        result.append(op)
    return result[:-1]


def _hunks(ops: Sequence[_Op]) -> list[str]:
    """Group changed lines with up to three lines of context around them."""
    changed = [index for index, op in enumerate(ops) if op[0] != " "]
    groups: list[tuple[int, int]] = []
    for index in changed:
        start, end = max(index - _CONTEXT, 0), min(index + _CONTEXT + 1, len(ops))
        if groups and start <= groups[-1][1]:
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))

    lines: list[str] = []
    for start, end in groups:
        chunk = ops[start:end]
        lines.append(
            f"@@ -{_range(ops, start, end, 2)} +{_range(ops, start, end, 3)} @@"
        )
        lines.extend(mark + text for mark, text, _, _ in chunk)
    return lines


def _range(ops: Sequence[_Op], start: int, end: int, side: int) -> str:
    """Return ``first,count`` of one side's lines in ``ops[start:end]``."""
    numbers = [op[side] for op in ops[start:end] if op[side]]
    if numbers:
        return f"{numbers[0]},{len(numbers)}"
    before = [op[side] for op in ops[:start] if op[side]]
    return f"{before[-1] if before else 0},0"


def _render(body: list[str], expected_label: str, actual_label: str) -> str:
    if len(body) > MAX_DIFF_LINES:
        left = len(body) - MAX_DIFF_LINES
        body = [*body[:MAX_DIFF_LINES], f"... {left} more diff lines not shown"]
    return "\n".join([f"--- {expected_label}", f"+++ {actual_label}", *body]) + "\n"
