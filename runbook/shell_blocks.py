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

    Two kinds of line continue a command:

    while ``shell_lexer.find_command_end`` finds that bash would prompt for
    more: after a line that ends in ``\\``, ``|``, ``&&`` or ``||``, inside an
    open quote, ``$(...)`` or compound command (``for ...; do`` up to
    ``done``, ``if`` up to ``fi``, ``case`` up to ``esac``, ``{`` up to
    ``}``), or before the closing line of a here-document. On such a line
    bash's ``PS2`` prompt, ``> `` (or a bare ``>``), is removed. Once the
    command is complete, a ``> `` line is output, as ``diff`` or a REPL prints.

    Every other line is output. Both parts end in a newline unless they are
    empty.
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
            last = _last_command_line(lines, bash_input, line_index, offset + 2)
            commands.append(line[2:])
            commands.extend(continued[number + 1 : last + 1])
        else:
            last = number
            if line != "$":
                output.append(line)
        offset += sum(len(item) + 1 for item in continued[number : last + 1])
        number = last + 1

    return _join_lines(commands), _join_lines(output)


def _last_command_line(
    lines: list[str], bash_input: str, line_index: LineIndex, start: int
) -> int:
    """Return the index of the last line of the command that starts at ``start``."""
    while True:
        end = shell_lexer.find_command_end(bash_input, start)
        if end is None:
            return len(lines) - 1
        return line_index.line_of(end - 1) - 1


#: Lines that look like a shell prompt other than ``$ ``: a root ``#``
#: prompt, ``(venv) $``, ``user@host:~$``, an indented ``$``, PowerShell.
_OTHER_PROMPT = re.compile(
    r"^(?:# \S|\(\S+\) ?\$ |[\w.-]+@[\w.-]+(?::\S*)?[$#] |\s+\$ |PS\S*> )"
)


def console_prompt_warnings(text: str) -> list[tuple[int, str]]:
    """Return (line in block, message) for output lines that look like prompts.

    Only ``$ `` starts a command, so such a line is not run; the author may
    have meant it to be.
    """
    found: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("$ ") or not _OTHER_PROMPT.match(line):
            continue
        found.append(
            (
                number,
                f"console line {line[:40]!r} looks like a prompt but only '$ ' "
                "starts a command, so it is treated as output; write it as "
                "'$ COMMAND' if it should run",
            )
        )
    return found


def bash_prompt_warnings(code: str) -> list[tuple[int, str]]:
    """Return (line in block, message) for ``$ `` prompts inside shell blocks."""
    return [
        (
            number,
            "shell block line starts with a '$ ' prompt, which bash runs as a "
            "command named '$'; drop the prompt or make the block 'console'",
        )
        for number, line in enumerate(code.splitlines(), start=1)
        if line.startswith("$ ")
    ]


def _has_continuation_prompt(line: str) -> bool:
    return line.startswith("> ") or line == ">"


def _remove_continuation_prompt(line: str) -> str:
    if _has_continuation_prompt(line):
        return line[2:]
    return line


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
