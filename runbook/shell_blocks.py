"""Text inside shell code blocks: console transcripts and comment lines."""

from __future__ import annotations

import re

from runbook import shell_lexer
from runbook.shell_tokens import LineIndex

# A heredoc operator and its delimiter word: <<EOF, <<-EOF, << 'EOF', <<\EOF.
# The lookarounds keep here-strings (<<<) out.
_HEREDOC = re.compile(
    r"""(?<!<)<<(?!<)(-?)[ \t]*\\?(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2"""
)


def split_console(text: str) -> tuple[str, str]:
    """Split a ``console`` block into its commands and its expected output.

    Only a line that starts with ``$ `` starts a command, and the prompt is
    removed. A line that is only ``$`` is an empty prompt and is dropped.
    Lines that start with ``# `` are output. They may show a root prompt, but
    they look the same as comment lines in a command's output.

    A command continues on the following lines for as long as bash would
    prompt for more input: after a line that ends in ``\\``, ``|``, ``&&`` or
    ``||``, inside an open quote or ``$(...)``, or before the closing line of
    a here-document. ``shell_lexer.find_command_end`` decides this, and it
    does not track compound commands such as ``for ...; do`` up to ``done``.
    Those continuation lines lose bash's ``PS2`` prompt, ``> ``, when they
    start with it, and a line that is only ``>`` becomes an empty line. Every
    other line is output. Both parts end in a newline unless they are empty.
    """
    lines = text.splitlines()
    # Each line as bash reads it when it continues a command, joined, so that
    # one lexer pass per command finds where the command ends.
    continued = [_remove_continuation_prompt(line) for line in lines]
    bash_input = "\n".join(continued) + "\n"
    line_index = LineIndex(bash_input)
    commands: list[str] = []
    output: list[str] = []

    number = 0
    offset = 0
    while number < len(lines):
        line = lines[number]
        if line.startswith("$ "):
            end = shell_lexer.find_command_end(bash_input, offset + 2)
            last = len(lines) - 1 if end is None else line_index.line_of(end - 1) - 1
            commands.append(line[2:])
            commands.extend(continued[number + 1 : last + 1])
        else:
            last = number
            if line != "$":
                output.append(line)
        offset += sum(len(item) + 1 for item in continued[number : last + 1])
        number = last + 1

    return _join_lines(commands), _join_lines(output)


def _remove_continuation_prompt(line: str) -> str:
    if line.startswith("> "):
        return line[2:]
    return "" if line == ">" else line


def _join_lines(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def comment_lines(code: str) -> tuple[str, ...]:
    """Return the full-line ``#`` comments of shell code, stripped of whitespace.

    A shebang on the first line is not a comment, and neither is a ``#`` line
    inside a heredoc body.
    """
    if "#" not in code:
        return ()

    comments: list[str] = []
    heredocs: list[tuple[str, bool]] = []  # (delimiter, strips leading tabs)

    for number, line in enumerate(code.split("\n")):
        if heredocs:
            delimiter, strips_tabs = heredocs[0]
            if (line.lstrip("\t") if strips_tabs else line) == delimiter:
                heredocs.pop(0)
            continue

        stripped = line.strip()
        if stripped.startswith("#"):
            if not (number == 0 and stripped.startswith("#!")):
                comments.append(stripped)
        elif "<<" in line:
            # NOTE: "<<" inside a quoted string also starts a heredoc here, so
            # comments after such a line are missed until the word recurs.
            for match in _HEREDOC.finditer(line):
                heredocs.append((match.group(3), match.group(1) == "-"))

    return tuple(comments)
