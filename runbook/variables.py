"""Placeholders and shell variables in steps: finding, checking, substituting, masking.

A step's code is bash. ``<server-ip>``-style placeholders are template slots that
the operator fills in before the step runs. ``$NAME`` references are ordinary
shell variables that an earlier step, the environment or ``--var`` must set.
Both are found by the bash lexer in ``shell_lexer``, which tracks which parts of
the code bash expands and which it takes literally (single quotes, comments,
quoted here-document bodies).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from runbook import shell_lexer
from runbook.errors import VariableError
from runbook.shell_assignments import assignment_offsets, first_source_offset
from runbook.shell_heredoc import find_heredoc_end
from runbook.shell_tokens import FULL_NAME, Heredoc, LineIndex, PlaceholderToken, Scan

# --- Public data types ------------------------------------------------------------

_Kind = Literal["placeholder", "variable"]


@dataclass(frozen=True)
class Placeholder:
    """An angle-bracket placeholder such as ``<server-ip>`` and its 1-based line."""

    name: str
    line: int


@dataclass(frozen=True)
class VariableReference:
    """A ``$NAME`` or ``${NAME...}`` reference and its 1-based line in the code."""

    name: str
    line: int


@dataclass(frozen=True)
class MissingValue:
    """A placeholder or variable that has no value at its first use.

    ``step`` is the 1-based position of the code in the sequence passed to
    ``find_missing_values``, and ``line`` the 1-based line within that code.
    """

    name: str
    kind: _Kind
    step: int
    line: int


_BUILTIN_NAMES = """
    BASH BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS
    BASH_COMMAND BASH_COMPAT BASH_ENV BASH_EXECUTION_STRING BASH_LINENO
    BASH_LOADABLES_PATH BASH_REMATCH BASH_SOURCE BASH_SUBSHELL BASH_VERSINFO
    BASH_VERSION BASH_XTRACEFD COLUMNS COMPREPLY COMP_CWORD COMP_KEY COMP_LINE
    COMP_POINT COMP_TYPE COMP_WORDBREAKS COMP_WORDS COPROC DIRSTACK EPOCHREALTIME
    EPOCHSECONDS EUID FUNCNAME GROUPS HISTCMD HISTCONTROL HISTFILE HISTFILESIZE
    HISTSIZE HOME HOSTNAME HOSTTYPE IFS LINENO LINES LOGNAME MACHTYPE MAPFILE OLDPWD
    OPTARG OPTERR OPTIND OSTYPE PATH PIPESTATUS PPID PS1 PS2 PS3 PS4 PWD RANDOM
    READLINE_LINE READLINE_MARK READLINE_POINT REPLY SECONDS SHELL SHELLOPTS SHLVL
    SRANDOM TERM UID USER _
"""
#: Variables that bash sets itself, or that every login session has, so a step
#: may use them without a value from the operator.
BASH_BUILTIN_VARIABLES = frozenset(_BUILTIN_NAMES.split())

# --- Finding placeholders, references and assignments -----------------------------

_CLOSING_TAG = re.compile(r"</([A-Za-z][A-Za-z0-9_.-]*)\s*>")


def _tag_names(code: str) -> set[str]:
    """Return names that close an HTML or XML tag (``</b>``) somewhere in the code.

    ``<b>`` in ``echo "<b>bold</b>"`` is markup, not a placeholder.
    """
    return set(_CLOSING_TAG.findall(code))


def _placeholder_tokens(scan: Scan) -> list[PlaceholderToken]:
    tags = _tag_names(scan.code) if "</" in scan.code else set()
    return [token for token in scan.placeholders if token.name not in tags]


def find_placeholders(code: str) -> list[Placeholder]:
    """Find the ``<name>`` placeholders in bash code, one per name.

    The result is in order of first appearance, each with the line of that
    first use. Placeholders count in single-quoted strings too, as in
    ``ssh web1 'sudo systemctl restart <service-name>'``. Heredoc operators,
    redirections, process substitution, comments, ``$'...'``, arithmetic,
    quoted here-document bodies and names that also appear as a closing tag
    (``</b>``) are not placeholders. Neither is a ``'...'`` inside
    ``"${X:-...}"``, where bash prints the quotes.
    """
    lines = LineIndex(code)
    found: dict[str, Placeholder] = {}
    for token in _placeholder_tokens(shell_lexer.scan(code)):
        if token.name not in found:
            found[token.name] = Placeholder(token.name, lines.line_of(token.start))
    return list(found.values())


def find_variable_references(code: str) -> list[VariableReference]:
    """Find every variable reference that bash expands and that has no default.

    Each occurrence is listed, in source order. Included: ``$NAME``,
    ``${NAME}``, ``${NAME:?msg}``, ``${#NAME}``, ``${!NAME}``, bare names in
    ``$(( ))`` and ``(( ))``, inside double quotes, unquoted here-document
    bodies, ``$(...)`` and backticks.

    Excluded: single quotes, comments, quoted here-document bodies,
    ``\\$NAME``, special and positional parameters, and references with a
    default or alternative value (``${X:-..}``, ``${X-..}``, ``${X:=..}``,
    ``${X=..}``, ``${X:+..}``, ``${X+..}``). Also excluded are references
    nested in such a word or in a ``${X:?msg}`` message, because bash expands
    them only in some cases, and ``${NAME[@]}``, which bash expands to nothing
    when NAME is unset even under ``set -u``.
    """
    lines = LineIndex(code)
    return [
        VariableReference(reference.name, lines.line_of(reference.offset))
        for reference in shell_lexer.scan(code).references
        if reference.required
    ]


def find_quoted_heredoc_references(code: str) -> list[VariableReference]:
    """Find ``$NAME`` and ``${NAME...}`` written inside a quoted here-document body.

    bash never expands these (``<<'EOF'``, ``<<"EOF"``, ``<<\\EOF``), so a
    ``${QPC_DB_KEY}`` there reaches the command literally. Every occurrence is
    listed, in source order, defaults or not; ``\\$NAME`` is skipped.
    """
    lines = LineIndex(code)
    return [
        VariableReference(reference.name, lines.line_of(reference.offset))
        for reference in shell_lexer.scan(code).references
        if reference.quoted_heredoc
    ]


def find_unterminated_heredoc(code: str) -> tuple[str, int] | None:
    """Return the delimiter and 1-based line of the first unclosed here-document.

    A here-document is unclosed when no line equals its delimiter, for example
    ``EOF > out.txt`` where ``EOF`` was meant. bash would wait for more input.
    """
    for heredoc in shell_lexer.scan(code).heredocs:
        if not heredoc.terminated:
            line = LineIndex(code).line_of(heredoc.operator_offset)
            return heredoc.delimiter, line
    return None


def find_assignments(code: str) -> set[str]:
    """Return the names of the shell variables that the code sets.

    Recognized: ``NAME=...`` and ``NAME+=...`` standing alone (a prefix such as
    ``NAME=1 cmd`` sets NAME only for cmd), ``export``, ``local``, ``declare``,
    ``typeset`` and ``readonly`` arguments, ``read`` and ``read -a`` names,
    ``for``/``select`` loop names, ``mapfile``/``readarray`` arrays,
    ``printf -v``, ``getopts``, ``let`` and arithmetic assignments, and
    ``${NAME:=default}``.
    """
    return set(assignment_offsets(shell_lexer.scan(code)))


# --- Missing values ---------------------------------------------------------------


def may_set_any_variable(code: str) -> bool:
    """Return whether the code runs ``source``, ``.`` or ``eval``.

    Such code may set variables that no scan can name, so a caller that
    checks later steps one at a time should stop asking for variable values.
    """
    return first_source_offset(shell_lexer.scan(code)) is not None


def find_missing_values(
    codes: Sequence[str],
    provided: Mapping[str, str],
    environment: Mapping[str, str],
) -> list[MissingValue]:
    """List the placeholders and variables that have no value, each at its first use.

    Steps are walked in order. A variable reference (without a default) is
    satisfied by an assignment in an earlier step or earlier in the same step,
    by ``provided`` (``--var`` and env-file values), by ``environment`` or by
    ``BASH_BUILTIN_VARIABLES``. A placeholder is satisfied only by ``provided``,
    under its name as written (``server-ip``).

    Once a step has run ``source``, ``.`` or ``eval`` (earlier in the same step
    or in an earlier step), no variable is reported any more, because the
    sourced file or evaluated text may set any of them
    (``source venv/bin/activate; echo "$VIRTUAL_ENV"``). Placeholders still are.
    """
    assigned: set[str] = set()
    reported: set[str] = set()
    missing: list[MissingValue] = []
    sourced = False
    for step, code in enumerate(codes, start=1):
        scan = shell_lexer.scan(code)
        step_assignments = assignment_offsets(scan)
        sourced_from = 0 if sourced else first_source_offset(scan)
        lines = LineIndex(code)
        for offset, kind, name in _uses(scan):
            if name in reported:
                continue
            if kind == "placeholder":
                satisfied = name in provided
            else:
                assigned_here = step_assignments.get(name, len(code) + 1) < offset
                satisfied = (
                    name in assigned
                    or assigned_here
                    or (sourced_from is not None and sourced_from <= offset)
                    or name in provided
                    or name in environment
                    or name in BASH_BUILTIN_VARIABLES
                )
            if not satisfied:
                reported.add(name)
                missing.append(MissingValue(name, kind, step, lines.line_of(offset)))
        assigned.update(step_assignments)
        sourced = sourced_from is not None
    return missing


def _uses(scan: Scan) -> list[tuple[int, _Kind, str]]:
    """Return (offset, kind, name) for each placeholder and required reference."""
    uses: list[tuple[int, _Kind, str]] = [
        (token.start, "placeholder", token.name) for token in _placeholder_tokens(scan)
    ]
    uses.extend(
        (reference.offset, "variable", reference.name)
        for reference in scan.references
        if reference.required
    )
    uses.sort(key=lambda use: use[0])
    return uses


# --- Substitution -----------------------------------------------------------------


def substitute_placeholders(code: str, values: Mapping[str, str]) -> str:
    """Replace each known placeholder with its value, quoted for its position.

    Unquoted, the value is quoted with ``shlex.quote``. Inside single quotes
    the quote is closed, the ``shlex.quote`` form inserted and the quote
    reopened, so ``'restart <svc>'`` becomes ``'restart '`` +
    ``shlex.quote(value)`` + ``''`` and the value is literal text of the same
    word. Inside double quotes, ``\\``, ``"``, ``$`` and backtick
    are escaped, and in an unquoted here-document body ``\\``, ``$`` and
    backtick. Inside a ``${X:-...}`` word the value becomes a double-quoted
    string. Inside backticks the result is escaped once more for the backtick
    layer. Only placeholders that ``find_placeholders`` reports are replaced,
    so comments and quoted here-document bodies stay as written. Unknown
    placeholders are kept.

    NOTE: a command that hands a single-quoted word to another shell, such as
    ``ssh host '...'`` or ``bash -c '...'``, makes that shell parse the value
    again, so a value with blanks or shell syntax needs quoting of its own.

    Raises VariableError when a value contains a NUL byte, which bash cannot
    store, when a placeholder written as ``$<name>`` gets a value other than a
    variable name, or when a value would put the delimiter on a line of its own
    and so end a here-document early.
    """
    scan = shell_lexer.scan(code)
    pieces: list[str] = []
    replaced: list[tuple[PlaceholderToken, str]] = []
    last = 0
    for token in _placeholder_tokens(scan):
        if token.name not in values:
            continue
        value = values[token.name]
        _check_value(token, value)
        replacement = _quote_for_context(token, value)
        pieces.append(code[last : token.start])
        pieces.append(replacement)
        replaced.append((token, replacement))
        last = token.end
    pieces.append(code[last:])
    _check_heredoc_bodies(code, replaced)
    return "".join(pieces)


def _check_value(token: PlaceholderToken, value: str) -> None:
    if "\0" in value:
        raise VariableError(
            f"value for <{token.name}> contains a NUL byte, which bash cannot "
            "hold; remove it"
        )
    # After a bare "$" a value such as "(cmd)" would turn into $(cmd), and no
    # quoting prevents that. A variable name is allowed: $NAME is a reference.
    if token.after_dollar and not FULL_NAME.match(value):
        raise VariableError(
            f"placeholder <{token.name}> follows a '$', so its value would form a "
            "shell expansion; give a variable name as the value or rewrite the "
            "step without the '$'"
        )


def _quote_for_context(token: PlaceholderToken, value: str) -> str:
    if token.context == "single":
        text = "'" + shlex.quote(value) + "'"
    elif token.context == "double":
        text = _escape_double_quoted(value)
    elif token.context == "heredoc":
        text = _escape_heredoc(value)
    elif token.context == "parameter":
        text = '"' + _escape_double_quoted(value) + '"'
    else:
        text = shlex.quote(value)
    for in_double in token.backticks:
        text = _escape_backtick(text, in_double)
    return text


def _escape_double_quoted(value: str) -> str:
    """Escape a value for the inside of a double-quoted bash string.

    NOTE: an interactive bash with history expansion on (``set -H``, its
    default) still expands ``!`` inside double quotes. No escape removes it
    cleanly, so the session must run with ``set +H``.
    """
    return re.sub(r'([\\"$`])', r"\\\1", value)


def _escape_heredoc(value: str) -> str:
    # In an unquoted here-document body only \, $ and ` are special.
    return re.sub(r"([\\$`])", r"\\\1", value)


def _escape_backtick(text: str, in_double: bool) -> str:
    # Inside `...` bash removes a backslash before \, ` and $ (and before " when
    # the backticks sit in double quotes) before it parses the command.
    special = r'[\\`$"]' if in_double else r"[\\`$]"
    return re.sub(f"({special})", r"\\\1", text)


def _check_heredoc_bodies(
    code: str, replaced: list[tuple[PlaceholderToken, str]]
) -> None:
    """Raise VariableError if a substituted body has a line equal to its delimiter."""
    by_heredoc: dict[Heredoc, list[tuple[PlaceholderToken, str]]] = {}
    for token, replacement in replaced:
        if token.heredoc is not None:
            by_heredoc.setdefault(token.heredoc, []).append((token, replacement))
    for heredoc, edits in by_heredoc.items():
        pieces: list[str] = []
        last = heredoc.body_start
        for token, replacement in edits:
            pieces.append(code[last : token.start])
            pieces.append(replacement)
            last = token.end
        pieces.append(code[last : heredoc.body_end])
        body = "".join(pieces)
        if find_heredoc_end(body, heredoc, 0, len(body))[2]:
            names = ", ".join(sorted({f"<{token.name}>" for token, _ in edits}))
            raise VariableError(
                f"the value for {names} would put the here-document delimiter "
                f"{heredoc.delimiter!r} on a line of its own and end the "
                "here-document early; choose a different value"
            )


# --- Values from the command line and from env files ------------------------------

_PLACEHOLDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")


def _is_value_name(name: str) -> bool:
    return bool(FULL_NAME.match(name) or _PLACEHOLDER_NAME.match(name))


def parse_var_option(text: str) -> tuple[str, str]:
    """Split a ``--var NAME=VALUE`` option into name and value.

    NAME is a shell variable name or a placeholder name, with or without the
    angle brackets (``--var '<server-ip>=10.0.0.5'``). VALUE may be empty.
    Raises VariableError when there is no ``=`` or the name is invalid.
    """
    name, equals, value = text.partition("=")
    # Error messages show only the leading name-like part of the text: the
    # rest may be a secret typed with the wrong separator.
    shown = _leading_name(text)
    if not equals:
        raise VariableError(
            f"invalid --var starting with {shown!r}: expected NAME=VALUE, for "
            "example --var server-ip=10.0.0.5 or --var QPC_AUTH_TOKEN=..."
        )
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    if not _is_value_name(name):
        raise VariableError(
            f"invalid --var starting with {shown!r}: the part before '=' is not "
            "a variable or placeholder name; use letters, digits and _ "
            "(placeholders may also use - and .)"
        )
    return name, value


_ENV_LINE = re.compile(r"(?:export\s+)?([^\s=]+)\s*=(.*)\Z", re.S)
_DOUBLE_QUOTED_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def load_env_file(path: str) -> dict[str, str]:
    """Read ``NAME=VALUE`` lines from a dotenv-style file.

    ``export`` before a name, blank lines and ``#`` comment lines are allowed.
    Single-quoted values are literal. Double-quoted values understand ``\\"``,
    ``\\\\`` and ``\\n``. Unquoted values lose a trailing `` # comment`` and
    surrounding blanks. Names may be shell variables or placeholder names. A
    later line overrides an earlier one. Raises VariableError for a missing or
    unreadable file and for a malformed line, naming ``path:line``.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise VariableError(f"env file not found: {path}; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VariableError(
            f"failed to read env file {path}: {error}; check that it is a readable "
            "UTF-8 text file"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, value = _parse_env_line(stripped, f"{path}:{number}")
        values[name] = value
    return values


def _leading_name(text: str) -> str:
    """Return the name-like start of ``text`` plus "...", never a value."""
    match = re.match(r"\s*(?:export\s+)?<?[A-Za-z0-9_.-]*>?", text)
    head = match.group(0) if match else ""
    return head + "..." if len(head) < len(text) else head


def _parse_env_line(line: str, location: str) -> tuple[str, str]:
    match = _ENV_LINE.match(line)
    if not match or not _is_value_name(match.group(1)):
        raise VariableError(
            f"{location}: invalid line starting with {_leading_name(line)!r}: "
            "expected NAME=VALUE, where NAME is a variable or placeholder name"
        )
    name, raw = match.groups()
    raw_value = raw.lstrip()
    if raw_value.startswith("'"):
        end = raw_value.find("'", 1)
        if end < 0:
            raise VariableError(
                f"{location}: unterminated single quote in the value of {name}; "
                "add the closing '"
            )
        value, rest = raw_value[1:end], raw_value[end + 1 :]
    elif raw_value.startswith('"'):
        value, rest = _parse_double_quoted_value(raw_value, name, location)
    else:
        # "#" starts a comment only after a blank, so X=a#b keeps its "#".
        return name, re.sub(r"\s+#.*\Z", "", raw, flags=re.S).strip()
    if rest.strip() and not rest.lstrip().startswith("#"):
        raise VariableError(
            f"{location}: unexpected text {rest.strip()!r} after the quoted value of "
            f"{name}; quote the whole value or start a comment with ' #'"
        )
    return name, value


def _parse_double_quoted_value(raw: str, name: str, location: str) -> tuple[str, str]:
    chars: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == '"':
            return "".join(chars), raw[index + 1 :]
        if char == "\\" and raw[index + 1 : index + 2] in _DOUBLE_QUOTED_ESCAPES:
            chars.append(_DOUBLE_QUOTED_ESCAPES[raw[index + 1]])
            index += 2
            continue
        chars.append(char)
        index += 1
    raise VariableError(
        f"{location}: unterminated double quote in the value of {name}; "
        'add the closing "'
    )


# --- Secrets ----------------------------------------------------------------------

# Parts of a name that make it a secret, also with a final S.
_SECRET_PARTS = frozenset(
    {
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PASSPHRASE",
        "CREDENTIAL",
        "PRIVATE",
        "APIKEY",
        "JWT",
        "AUTH",
    }
)
# Words that make a secret anywhere in a part (ACCESSTOKEN, PGPASSWORD), unless
# a letter other than a final S follows (TOKENIZER, SECRETARY).
_SECRET_WORD = re.compile(
    r"(?:SECRET|PASSWORD|PASSWD|CREDENTIAL|TOKEN|APIKEY|SECRETKEY|PRIVATEKEY)"
    r"S?(?![A-Z])"
)
# Separators, and camelCase boundaries: accessToken, APIKey.
_NAME_PARTS = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

#: Secret values shorter than this are not masked, because masking "1" or "yes"
#: would garble unrelated output.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """Return whether a variable or placeholder name looks like a secret's name.

    The name is split into parts at ``_``, ``-``, ``.`` and whitespace, and at
    camelCase boundaries (``accessToken`` and ``APIKey`` have two parts). With
    case ignored, the name is a secret when:

    1. a part, or a part less a final S, is TOKEN, KEY, SECRET, PASSWORD,
       PASSWD, PASS, PASSPHRASE, CREDENTIAL, PRIVATE, APIKEY, JWT or AUTH;
    2. a part is PWD and the name has other parts (``MYSQL_PWD``); the name
       ``PWD`` alone, like ``OLDPWD``, is the directory that bash keeps;
    3. a part contains SECRET, PASSWORD, PASSWD, CREDENTIAL, TOKEN, APIKEY,
       SECRETKEY or PRIVATEKEY, optionally followed by S, with no other letter
       after it (``ACCESSTOKEN``, ``PGPASSWORD``, ``TOKEN2``).

    So ``KEYBOARD_LAYOUT``, ``MONKEY`` and ``PASSTHROUGH`` are not secrets:
    KEY and PASS count only as whole parts. Neither are ``TOKENIZER_PATH`` and
    ``SECRETARY``, where a letter follows the word.
    """
    parts = [part.upper() for part in _NAME_PARTS.split(name) if part]
    for part in parts:
        if part in _SECRET_PARTS or part.removesuffix("S") in _SECRET_PARTS:
            return True
        if part == "PWD" and len(parts) > 1:
            return True
        if _SECRET_WORD.search(part):
            return True
    return False


def _secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    values = sorted(
        {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    )
    if not values:
        return None
    return re.compile("|".join(re.escape(value) for value in values))


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value with ``***``.

    Values shorter than MIN_SECRET_LENGTH characters are left alone. Where one
    secret contains another, the longer one is masked whole.
    """
    pattern = _secret_pattern(secrets)
    return pattern.sub("***", text) if pattern else text


def mask_secrets_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """Replace every occurrence of each secret's UTF-8 encoding with ``***``."""
    values = sorted(
        {s.encode() for s in secrets if len(s) >= MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )
    if not values:
        return data
    pattern = re.compile(b"|".join(re.escape(value) for value in values))
    return pattern.sub(b"***", data)
