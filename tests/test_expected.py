"""Expected output matching: wildcards, regular expressions, normalising, diffs."""

from __future__ import annotations

import signal
from types import FrameType

import pytest

from runbook.expected import (
    MAX_DIFF_LINES,
    ExpectedOutputError,
    check_output,
    compile_expected,
    normalize_lines,
    output_matches,
)

# (expected, actual, matches)
LITERAL_CASES: list[tuple[str, str, bool]] = [
    ("hello\n", "hello\n", True),
    ("hello\n", "hello", True),
    ("hello", "hello   \n\n\n", True),
    ("hello  \n", "hello\n", True),
    ("hello\n", "Hello\n", False),
    ("a\nb\n", "a\n", False),
    ("a\n", "a\nb\n", False),
    ("", "", True),
    ("", "\n\n", True),
    ("", "something\n", False),
    ("\nindented", "\nindented", True),
    ("  two spaces", "two spaces", False),
    # A regex character is literal without the regex attribute.
    ("[0-9]+ files", "12 files", False),
    ("[0-9]+ files", "[0-9]+ files", True),
]

# Lines that are exactly "..." take zero or more whole lines.
WILDCARD_LINE_CASES: list[tuple[str, str, bool]] = [
    ("start\n...\nend\n", "start\nend\n", True),
    ("start\n...\nend\n", "start\none\ntwo\nend\n", True),
    ("start\n...\nend\n", "start\none\ntwo\n", False),
    ("...\n", "", True),
    ("...\n", "anything\nat all\n", True),
    ("...\nlast\n", "a\nlast\nb\nlast\n", True),
    ("...\nlast\n", "a\nlast\nb\n", False),
    ("a\n...\nb\n...\nc\n", "a\nb\nc\n", True),
    ("a\n...\nb\n...\nc\n", "a\nx\nb\ny\nz\nc\n", True),
    ("a\n...\nb\n...\nc\n", "a\nx\ny\nz\nc\n", False),
    ("...\n...\n", "x\n", True),
    ("first\n...\n", "first\n", True),
    ("first\n...\n", "second\n", False),
]

# "..." inside a line takes any text within that line, nothing across lines.
INLINE_WILDCARD_CASES: list[tuple[str, str, bool]] = [
    ("id ...\n", "id 42\n", True),
    ("id ...\n", "id x y\n", True),
    ("... files in ...\n", "12 files in /tmp\n", True),
    ("started in ... s\n", "started in 0.3 s\n", True),
    ("started in ... s\n", "started in 0.3 ms\n", False),
    ("a...b\n", "a\nb\n", False),
    ("(...)\n", "(x)\n", True),
    ("(...)\n", "[x]\n", False),
    # The first and last pieces anchor the line and may not overlap.
    ("ab...ba\n", "aba\n", False),
    ("ab...ba\n", "abba\n", True),
    ("x...x\n", "x\n", False),
    ("a...a...a\n", "aaa\n", True),
    ("a...a...a\n", "aa\n", False),
    ("a...b...b\n", "ab\n", False),
    ("a...b...b\n", "abbab\n", True),
    ("....\n", "x.\n", True),
    ("....\n", "x\n", False),
]


@pytest.mark.parametrize(("expected", "actual", "matches"), LITERAL_CASES)
def test_literal_lines(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


@pytest.mark.parametrize(("expected", "actual", "matches"), WILDCARD_LINE_CASES)
def test_wildcard_lines(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


@pytest.mark.parametrize(("expected", "actual", "matches"), INLINE_WILDCARD_CASES)
def test_inline_wildcards(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches


def _fail_after(seconds: int) -> None:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"matching took more than {seconds} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)


def test_inline_wildcards_on_long_line() -> None:
    """Many wildcards against a 10,000-character line finish at once.

    A regular expression built from ``.*`` pieces backtracks for hours here.
    The alarm only turns such a hang into a failure; it measures nothing.
    """
    line = "a" * 10_000
    expected = "a...a...a...a...a...a...a...b\n"
    _fail_after(20)
    try:
        assert output_matches(expected, line) is False
        assert output_matches(expected, line + "b") is True
        assert check_output(expected, line) is not None
        assert check_output("...\n" + expected + "...\n", f"x\n{line}\n" * 50)
    finally:
        signal.alarm(0)


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("[0-9]+ files\n", "12 files\n", True),
        ("[0-9]+ files\n", "12 files left\n", False),
        ("files: \\d+\n...\ndone\n", "files: 3\na\nb\ndone\n", True),
        ("(ok|fine)\n", "fine\n", True),
        ("ok\n", "not ok\n", False),
        ("a.c\n", "abc\n", True),
    ],
)
def test_regex_lines_fullmatch(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual, regex=True) is matches


def test_ansi_escapes_ignored() -> None:
    actual = "\x1b[1;31mERROR\x1b[0m disk full\n\x1b]0;title\x07done\n"

    assert normalize_lines(actual) == ["ERROR disk full", "done"]
    assert output_matches("ERROR disk full\ndone\n", actual)


def test_carriage_return_overwrites() -> None:
    assert normalize_lines("50%\r100%\r\n") == ["100%"]
    assert normalize_lines("downloading\rdone\n") == ["doneloading"]
    assert normalize_lines("a\r\nb\r\n") == ["a", "b"]


def test_invalid_regex_names_line() -> None:
    with pytest.raises(ExpectedOutputError) as caught:
        compile_expected("fine\n...\n(unclosed\n", regex=True)

    assert caught.value.line == 3
    assert "line 3 of the output block is not a valid regular expression" in str(
        caught.value
    )
    assert "'(unclosed'" in str(caught.value)


def test_wildcard_line_not_compiled_as_regex() -> None:
    assert output_matches("...\nend\n", "x\nend\n", regex=True)


def test_match_gives_no_diff() -> None:
    assert check_output("a\n...\nz\n", "a\nb\nz\n") is None


def test_diff_marks_only_real_changes() -> None:
    diff = check_output(
        "id ...\n...\nstatus ok\n",
        "id 7\nx\ny\nstatus failed\n",
        expected_label="expected (p.md:5)",
        actual_label="output of step 2",
    )

    assert diff is not None
    assert diff.splitlines() == [
        "--- expected (p.md:5)",
        "+++ output of step 2",
        "@@ -1,2 +1,4 @@",
        " id 7",
        " x",
        " y",
        "-status ok",
        "+status failed",
    ]


def test_diff_wildcard_takes_lines_before_change() -> None:
    diff = check_output("one\ntwo\n...\nend\n", "one\nTWO\nx\nend\nextra\n")

    assert diff is not None
    lines = diff.splitlines()
    assert "-two" in lines
    assert " end" in lines
    assert "+extra" in lines


def test_diff_hunk_has_context() -> None:
    expected = "".join(f"line {n}\n" for n in range(1, 21))
    actual = expected.replace("line 10\n", "line ten\n")

    diff = check_output(expected, actual)

    assert diff is not None
    body = diff.splitlines()[2:]
    assert body[0] == "@@ -7,7 +7,7 @@"
    assert body[1:] == [
        " line 7",
        " line 8",
        " line 9",
        "-line 10",
        "+line ten",
        " line 11",
        " line 12",
        " line 13",
    ]


def test_diff_of_missing_output() -> None:
    diff = check_output("expected line\n", "")

    assert diff is not None
    assert diff.splitlines()[2:] == ["@@ -1,1 +0,0 @@", "-expected line"]


def test_long_diff_is_cut() -> None:
    actual = "".join(f"{n}\n" for n in range(MAX_DIFF_LINES * 2))

    diff = check_output("nothing like it\n", actual)

    assert diff is not None
    lines = diff.splitlines()
    assert len(lines) == 2 + MAX_DIFF_LINES + 1
    assert lines[-1].endswith("more diff lines not shown")


def test_huge_output_falls_back_to_plain_diff() -> None:
    expected = "".join(f"e{n}\n" for n in range(1100))
    actual = "".join(f"a{n}\n" for n in range(1100))

    diff = check_output(expected, actual)

    assert diff is not None
    assert diff.splitlines()[2].startswith("@@ ")
    assert "-e0" in diff.splitlines()
