"""Playbook source text: decoding, line endings and front matter.

Everything here keeps line numbers intact, so that the Markdown parser reports
the line numbers that an editor shows.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runbook.errors import PlaybookDecodeError, PlaybookError, PlaybookNotFound

# tomllib ends its messages with the place, relative to the TOML text.
_TOML_PLACE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")

_FRONT_MATTER_CLOSERS = {"---": ("---", "..."), "+++": ("+++",)}


def read_playbook_text(path: str) -> str:
    """Read a playbook file as text with ``\\n`` line endings and no BOM.

    Raises PlaybookNotFound when the path is missing or not a file, and
    PlaybookDecodeError when the file is not UTF-8.
    """
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise PlaybookNotFound(path) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise PlaybookError(path, f"cannot read the playbook: {reason}") from None

    return normalize_newlines(decode_playbook(data, path))


def decode_playbook(data: bytes, path: str) -> str:
    """Decode file contents as UTF-8, dropping a leading byte order mark.

    Raises PlaybookDecodeError naming the line and byte offset of the first
    byte that is not UTF-8.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # The utf-8-sig codec counts offsets after the BOM it removed.
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        offset = error.start + bom
        message = (
            f"the file is not valid UTF-8: byte 0x{data[offset]:02x} at byte offset "
            f"{offset} cannot be decoded ({error.reason}); re-save the file as UTF-8"
        )
        raise PlaybookDecodeError(path, message, _line_at(data, offset)) from None


def _line_at(data: bytes, offset: int) -> int:
    """Return the 1-based line of ``offset``, counting CRLF, LF and CR endings."""
    before = data[:offset]
    crlf = before.count(b"\r\n")
    return before.count(b"\n") + before.count(b"\r") - crlf + 1


def normalize_newlines(text: str) -> str:
    """Return ``text`` with CRLF and CR line endings turned into LF, and no BOM."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(text: str, path: str) -> tuple[Mapping[str, Any], str]:
    """Parse YAML (``---``) or TOML (``+++``) front matter at the top of ``text``.

    Returns the front matter mapping (empty when there is none) and the text
    with the front matter lines, delimiters included, replaced by empty lines.
    Raises PlaybookError with the line of the problem when the front matter is
    not closed, not valid YAML or TOML, or not a mapping.
    """
    first_end = text.find("\n")
    opener = (text if first_end == -1 else text[:first_end]).rstrip()
    if opener not in _FRONT_MATTER_CLOSERS:
        return {}, text

    closers = _FRONT_MATTER_CLOSERS[opener]
    closing_line, closing_start, body_start = _find_closing_line(text, closers)
    if closing_line == 0:
        message = f"front matter is not closed; end it with a {opener!r} line"
        raise PlaybookError(path, message, 1)

    block = text[first_end + 1 : closing_start]
    last_line = max(closing_line - 1, 2)
    if opener == "---":
        data = _load_yaml(block, path, last_line)
    else:
        data = _load_toml(block, path, last_line)

    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        message = f"front matter must be a mapping of keys to values, not a {kind}"
        raise PlaybookError(path, message, 1)

    return data, "\n" * closing_line + text[body_start:]


def _find_closing_line(text: str, closers: tuple[str, ...]) -> tuple[int, int, int]:
    """Find the closing delimiter of front matter that starts on line 1.

    Returns its 1-based line, the offset where it starts and the offset after
    its newline, or zeros when no later line is a closing delimiter.
    """
    line_number = 2
    start = text.find("\n") + 1
    while 0 < start <= len(text):
        end = text.find("\n", start)
        line_end = len(text) if end == -1 else end
        if text[start:line_end].rstrip() in closers:
            return line_number, start, min(line_end + 1, len(text))
        if end == -1:
            break
        start = end + 1
        line_number += 1
    return 0, 0, 0


def _load_yaml(block: str, path: str, last_line: int) -> Any:
    import yaml  # only playbooks with front matter pay for importing pyyaml

    try:
        return yaml.safe_load(block)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        # An error found at the end of the text points past the last line.
        line = min(2 + mark.line, last_line) if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        message = f"invalid YAML front matter: {problem}"
        raise PlaybookError(path, message, line) from None


def _load_toml(block: str, path: str, last_line: int) -> Any:
    import tomllib

    try:
        return tomllib.loads(block)
    except tomllib.TOMLDecodeError as error:
        text = str(error)
        match = _TOML_PLACE.search(text)
        line = last_line
        if match is not None:
            text = text[: match.start()]
            if match.group(1) is not None:
                line = 1 + int(match.group(1))
        raise PlaybookError(path, f"invalid TOML front matter: {text}", line) from None
