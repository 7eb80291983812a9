"""Text inside shell code blocks: console transcripts and comment lines."""

from __future__ import annotations

import re

# A heredoc operator and its delimiter word: <<EOF, <<-EOF, << 'EOF', <<\EOF.
# The lookarounds keep here-strings (<<<) out.
_HEREDOC = re.compile(
    r"""(?<!<)<<(?!<)(-?)[ \t]*\\?(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2"""
)


def split_console(text: str) -> tuple[str, str]:
    """Split a ``console`` block into its commands and its expected output.

    A line that starts with ``$ `` is a command, and the prompt is removed. A
    command that ends in ``\\`` continues on the next line, which is kept as it
    is. A line that is only ``$`` is an empty prompt and is dropped. Every
    other line is output. Both parts end in a newline unless they are empty.
    """
    commands: list[str] = []
    output: list[str] = []
    continues = False

    for line in text.splitlines():
        if continues:
            commands.append(line)
            continues = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(line[2:])
            continues = line.endswith("\\")
        elif line != "$":
            output.append(line)

    return _join_lines(commands), _join_lines(output)


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
