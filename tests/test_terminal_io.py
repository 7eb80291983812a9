"""Tests for the bounded output capture of runbook.terminal.

The limit is a constructor argument, so small limits show the cuts.
"""

from __future__ import annotations

import pytest

from runbook.terminal import OutputCapture

LIMIT = 16  # keeps the first 8 and the last 8 bytes


def capture(data: bytes, chunk: int | None = None, limit: int = LIMIT) -> OutputCapture:
    result = OutputCapture(limit)
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        result.add(data[start : start + step])
    return result


def note(dropped: int) -> bytes:
    return f"\n[runbook: {dropped} bytes of output not kept]\n".encode()


def test_output_within_limit_kept_whole() -> None:
    data = "héllo €".encode()
    assert len(data) <= LIMIT

    assert capture(data).value() == data
    assert capture(data, chunk=1).value() == data


def test_ascii_cut_at_limit() -> None:
    data = bytes(range(97, 123))  # a-z, 26 bytes

    result = capture(data)

    assert result.value() == b"abcdefgh" + note(10) + b"stuvwxyz"


@pytest.mark.parametrize("chunk", [1, None])
def test_cuts_back_off_to_character_boundaries(chunk: int | None) -> None:
    # "€" is 3 bytes. The cut after the first 8 bytes falls inside the first
    # one, and the cut before the last 8 bytes inside the second one.
    data = "abcdef€".encode() + b"x" * 10 + "€ab€op".encode()
    assert len(data) == 29

    value = capture(data, chunk).value()

    assert value == b"abcdef" + note(13) + "€ab€op".encode()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, None])
@pytest.mark.parametrize("limit", [8, 9, 10, 11, 16, 17])
@pytest.mark.parametrize(
    "text",
    ["€" * 20, "a€𝄞ü" * 6, "𝄞x" * 9, "aü" * 13],
    ids=["three-byte", "mixed", "four-byte", "two-byte"],
)
def test_valid_utf8_stays_valid(text: str, limit: int, chunk: int | None) -> None:
    data = text.encode()

    result = capture(data, chunk, limit)
    value = result.value()

    value.decode()  # raises if a cut split a character
    assert data.startswith(result.head)
    assert data.endswith(result.tail)
    assert len(result.head) + result.dropped + len(result.tail) == len(data)
    assert limit // 2 - 3 <= len(result.head) <= limit // 2
    assert limit // 2 <= len(result.tail) <= limit // 2 + 3


@pytest.mark.parametrize(
    "data",
    [
        # The head ends in the lead byte of "€", but no continuation follows.
        b"abcdefg\xe2" + b"x" * 20,
        # The tail starts with a continuation byte that has no lead byte.
        b"a" * 15 + b"\x82\xac" + b"y" * 7,
        # The tail cut splits "\xe2\x82", which "y" does not complete.
        b"a" * 14 + b"\xe2\x82" + b"y" * 8,
        b"\xff" * 30,
    ],
    ids=["head-lead-only", "tail-continuation-only", "tail-truncated", "binary"],
)
def test_invalid_utf8_cut_at_limit(data: bytes) -> None:
    result = capture(data)

    assert bytes(result.head) == data[:8]
    assert bytes(result.tail) == data[-8:]
    assert result.dropped == len(data) - 16
