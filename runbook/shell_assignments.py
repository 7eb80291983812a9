"""The shell variables that bash code sets, found from the words the lexer keeps.

``assignment_offsets`` reads the words of each simple command in a ``Scan``
(``NAME=value``, ``export``, ``read``, ``for`` and the like) and adds the
assignments the lexer saw itself (``${NAME:=default}``, arithmetic).
``first_source_offset`` finds where code that may set any variable runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from runbook.shell_tokens import FULL_NAME, NAME, Scan, Word


def assignment_offsets(scan: Scan) -> dict[str, int]:
    """Map each assigned name to the offset from which the code has set it."""
    offsets: dict[str, int] = {}
    found = list(scan.assignments)
    for words in _group_commands(scan.words):
        found.extend(_command_assignments(words))
    for name, offset in found:
        if offset < offsets.get(name, len(scan.code) + 1):
            offsets[name] = offset
    return offsets


def first_source_offset(scan: Scan) -> int | None:
    """Return the end of the first ``source``, ``.`` or ``eval`` command, or None.

    Those commands run code that the scan cannot see, so from that offset on
    any variable may be set. The offset is the end of the command's last word,
    because bash expands its arguments (``source "$DIR/env"``) before it runs
    it. A command in a subshell counts too, although it cannot set variables
    of the shell around it.
    """
    ends = [
        words[-1].end
        for words in _group_commands(scan.words)
        if _command_name(words) in _SOURCING_COMMANDS
    ]
    return min(ends, default=None)


def _group_commands(words: list[Word]) -> Iterator[list[Word]]:
    commands: dict[int, list[Word]] = {}
    for word in sorted(words, key=lambda w: w.start):
        commands.setdefault(word.command, []).append(word)
    yield from commands.values()


# Reserved words after which the next word starts a command.
_COMMAND_PREFIXES = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}"}
)
_ASSIGNMENT_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=")
_DECLARED_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?(?:\+?=|\Z)")
_LET_ASSIGNMENT = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\s*(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+|--)"
)
_DECLARATION_COMMANDS = frozenset({"export", "local", "declare", "typeset", "readonly"})
_SOURCING_COMMANDS = frozenset({"source", ".", "eval"})
# Words that run the builtin named by the next word: "builtin source env.sh".
_BUILTIN_RUNNERS = frozenset({"builtin", "command"})


def _command_name(words: list[Word]) -> str | None:
    """Return the command word of a simple command, after keywords and NAME=value."""
    index = 0
    while index < len(words) and words[index].text in _COMMAND_PREFIXES:
        index += 1
    while index < len(words) and _ASSIGNMENT_WORD.match(words[index].text):
        index += 1
    while index < len(words) and words[index].text in _BUILTIN_RUNNERS:
        index += 1
    return _unquote(words[index].text) if index < len(words) else None


def _command_assignments(words: list[Word]) -> Iterator[tuple[str, int]]:
    """Yield (name, offset) for the variables that one simple command sets.

    The offset is the end of the word that sets the name, because bash expands
    the right-hand side (``X=$((X+1))``) before it assigns.
    """
    index = 0
    while index < len(words) and words[index].text in _COMMAND_PREFIXES:
        index += 1
    prefix: list[tuple[str, int]] = []
    while index < len(words):
        match = _ASSIGNMENT_WORD.match(words[index].text)
        if not match:
            break
        prefix.append((match.group(1), words[index].end))
        index += 1
    if index == len(words):
        yield from prefix
        return
    command, arguments = words[index].text, words[index + 1 :]
    if command in _DECLARATION_COMMANDS:
        yield from _declared_names(arguments)
    elif command == "read":
        yield from _option_names(arguments, "adinNptu", array_option="a", rest=True)
    elif command in ("mapfile", "readarray"):
        yield from _option_names(arguments, "dnOsuCc", array_option="", rest=False)
    elif command == "printf":
        yield from _printf_names(arguments)
    elif command == "getopts" and len(arguments) >= 2:
        yield from _plain_names(arguments[1:2])
    elif command in ("for", "select") and arguments:
        yield from _plain_names(arguments[:1])
    elif command == "let":
        for word in arguments:
            match = _LET_ASSIGNMENT.match(_unquote(word.text))
            if match:
                yield match.group(1), word.end


def _unquote(text: str) -> str:
    """Remove one pair of surrounding quotes from a simple word."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _plain_names(words: Iterable[Word]) -> Iterator[tuple[str, int]]:
    for word in words:
        text = _unquote(word.text)
        if FULL_NAME.match(text):
            yield text, word.end


def _declared_names(arguments: list[Word]) -> Iterator[tuple[str, int]]:
    for word in arguments:
        text = _unquote(word.text)
        if text.startswith(("-", "+")):
            if "f" in text or "F" in text:
                return  # declare -f lists or marks functions, not variables
            continue
        match = _DECLARED_NAME.match(text)
        if match:
            yield match.group(1), word.end


def _option_names(
    arguments: list[Word], takes_value: str, array_option: str, rest: bool
) -> Iterator[tuple[str, int]]:
    """Yield the names set by ``read`` or ``mapfile`` after parsing their options.

    With ``rest`` every remaining word is a name (read), otherwise only the
    first one is (mapfile).
    """
    index = 0
    while index < len(arguments):
        text = arguments[index].text
        if text == "--":
            index += 1
            break
        if len(text) < 2 or not text.startswith("-"):
            break
        for position, option in enumerate(text[1:], start=1):
            if option not in takes_value:
                continue
            value = text[position + 1 :]
            if not value and index + 1 < len(arguments):
                index += 1
                value = arguments[index].text
            value = _unquote(value)
            if option == array_option and FULL_NAME.match(value):
                yield value, arguments[index].end
            break
        index += 1
    remaining = arguments[index:] if rest else arguments[index : index + 1]
    yield from _plain_names(remaining)


def _printf_names(arguments: list[Word]) -> Iterator[tuple[str, int]]:
    if not arguments or not arguments[0].text.startswith("-v"):
        return
    text, end = arguments[0].text[2:], arguments[0].end
    if not text and len(arguments) > 1:
        text, end = arguments[1].text, arguments[1].end
    match = NAME.match(_unquote(text))
    if match:
        yield match.group(), end
