"""Step and section attributes from fence info strings and runbook comments.

Two spellings are accepted, in a fence info string after the language or in an
HTML comment that starts with ``runbook:``::

    ```bash {name=setup timeout=5 confirm}
    ```sh {"name": "check", "interactive": false}
    <!-- runbook: timeout=30 skip-test="needs a cluster" -->

In the ``key=value`` form, pairs are separated by whitespace, a value may be
double- or single-quoted (a backslash escapes the next character inside quotes),
a bare key means ``true``, and bare values ``true``, ``false``, integers and
decimal numbers are typed. Every key of a step or section must be one of
``KNOWN_ATTRIBUTES`` or ``ATTRIBUTE_ALIASES``; an expected output block
(```` ```output {regex} ````) takes only ``OUTPUT_ATTRIBUTES``.
Errors are ``ValueError`` with a message that names the attribute text; the
parser adds the file and line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FENCE_CONTEXT = "fence info string"
COMMENT_CONTEXT = "runbook comment"

_KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = re.compile(_KEY_PATTERN)
_LANGUAGE = re.compile(r"[^\s{]*")
_BARE_VALUE = re.compile(r"""[^\s{}"']+""")
_QUOTED_PATTERN = r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'"
_QUOTED = re.compile(_QUOTED_PATTERN, re.DOTALL)
# One key, optionally with "=value", that ends at whitespace, "}" or the end.
_PAIR = re.compile(
    rf"""(?P<key>{_KEY_PATTERN})
    (?:=(?P<value>{_QUOTED_PATTERN}|[^\s{{}}"']+))?
    (?=[\s}}]|$)""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: One whitespace-separated word of an info string; quotes may hold spaces.
_INFO_WORD = re.compile(rf"(?:{_QUOTED_PATTERN}|[^\s\"'])+", re.DOTALL)
_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"[^\s}]+|}")
_INTEGER = re.compile(r"[+-]?[0-9]+")
#: A deployment name in ``when`` and in the front matter's ``deployments``.
DEPLOYMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")


class _Flag:
    """Marker for a bare key written without ``=value``."""


_FLAG = _Flag()


@dataclass(frozen=True)
class _RawAttribute:
    key: str
    value: Any
    text: str  # as written, for error messages, such as "timeout=abc"
    bare: bool  # an unquoted key=value value, so its text can be used as a string


# --- Validation ----------------------------------------------------------------


def _as_string(attribute: _RawAttribute) -> str:
    if attribute.value is _FLAG:
        raise ValueError(f"{attribute.key} needs a value, as in {attribute.key}=VALUE")

    if attribute.bare:
        # name=42 or when=true: the author wrote text, so keep it as text.
        value = attribute.text.split("=", 1)[1]
    elif isinstance(attribute.value, str):
        value = attribute.value
    else:
        raise ValueError(f"{attribute.key} must be a string")

    if not value:
        raise ValueError(f"{attribute.key} must not be empty")
    return value


def _as_reason(attribute: _RawAttribute) -> str:
    if attribute.value is _FLAG:
        raise ValueError(
            f'{attribute.key} needs a reason, as in {attribute.key}="needs a cluster"'
        )
    return _as_string(attribute)


def _as_timeout(attribute: _RawAttribute) -> float | int:
    value = attribute.value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.key} must be a positive number of seconds")
    return value


_EXPECT_FORMS = (
    'must be an exit status from 0 to 255, a list of them (expect="0,1" or '
    "[0, 1]) or any"
)


def _exit_status(value: Any, key: str) -> int:
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    is_integer = isinstance(value, int) and not isinstance(value, bool)
    if not is_integer or not 0 <= value <= 255:
        raise ValueError(f"{key} {_EXPECT_FORMS}")
    return int(value)


def _as_exit_status(attribute: _RawAttribute) -> int | str | tuple[int, ...]:
    """Return one status, ``"any"``, or a sorted tuple of several statuses."""
    key = attribute.key
    value = attribute.value
    if value is _FLAG:
        raise ValueError(f'{key} needs a value: {key}=0, {key}="0,1" or {key}=any')
    if attribute.bare and isinstance(value, str):
        value = attribute.text.split("=", 1)[1]
    if value == "any":
        return "any"
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{key} {_EXPECT_FORMS}; the list is empty")
        statuses = sorted({_exit_status(item, key) for item in value})
        return statuses[0] if len(statuses) == 1 else tuple(statuses)
    return _exit_status(value, key)


def _as_target(attribute: _RawAttribute) -> str:
    value = _as_string(attribute)
    if value not in ("local", "remote"):
        raise ValueError(
            f"{attribute.key} must be local (a shell on this machine) or remote "
            f"(the run's --target, the default), not {value!r}"
        )
    return value


def _as_deployments(attribute: _RawAttribute) -> tuple[str, ...]:
    """Return the deployment names of ``when``: one name or a comma list."""
    value = attribute.value
    items = value if isinstance(value, list) else _as_string(attribute).split(",")
    names: list[str] = []
    for item in items:
        name = item.strip() if isinstance(item, str) else item
        if not isinstance(name, str) or not DEPLOYMENT_NAME.fullmatch(name):
            raise ValueError(
                f"{attribute.key} must name deployments, as in {attribute.key}=systemd "
                f'or {attribute.key}="systemd,compose"; {name!r} is not a name '
                "(letters, digits, '.', '_' and '-')"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _as_boolean(attribute: _RawAttribute) -> bool:
    if attribute.value is _FLAG:
        return True
    if not isinstance(attribute.value, bool):
        raise ValueError(f"{attribute.key} must be true or false")
    return attribute.value


_CONVERTERS: Mapping[str, Callable[[_RawAttribute], Any]] = {
    "name": _as_string,
    "timeout": _as_timeout,
    "expect": _as_exit_status,
    "skip-test": _as_reason,
    "confirm": _as_boolean,
    "interactive": _as_boolean,
    "target": _as_target,
    "when": _as_deployments,
}

#: Keys a step or section may carry, with their stored values: name and
#: skip-test (a reason) are strings, timeout is a positive number of seconds,
#: expect is an exit status, a tuple of them or ``"any"``, confirm and
#: interactive are booleans, target is ``"local"`` or ``"remote"``, and when is
#: a tuple of deployment names.
KNOWN_ATTRIBUTES = frozenset(_CONVERTERS)

#: Other spellings of known keys. ``exit=1`` is stored as ``expect=1``.
ATTRIBUTE_ALIASES: Mapping[str, str] = {"exit": "expect"}

#: Step attributes that a section's runbook comment passes on to every step
#: beneath it. ``name`` names one step, so it is not passed on.
INHERITED_ATTRIBUTES = frozenset(KNOWN_ATTRIBUTES - {"name"})

_OUTPUT_CONVERTERS: Mapping[str, Callable[[_RawAttribute], Any]] = {
    "regex": _as_boolean,
}

#: Keys an expected output block (```` ```output ```` or ```` ```text ````)
#: may carry: ``regex`` makes each of its lines a Python regular expression.
OUTPUT_ATTRIBUTES = frozenset(_OUTPUT_CONVERTERS)


@dataclass(frozen=True)
class _Schema:
    converters: Mapping[str, Callable[[_RawAttribute], Any]]
    aliases: Mapping[str, str]
    #: Where the keys apply, for the unknown-attribute message.
    label: str

    def known_list(self) -> str:
        names = sorted([*self.converters, *self.aliases])
        return f"known attributes{self.label}: " + ", ".join(names)


_STEP_SCHEMA = _Schema(_CONVERTERS, ATTRIBUTE_ALIASES, "")
_OUTPUT_SCHEMA = _Schema(_OUTPUT_CONVERTERS, {}, " of an output block")


def _validate(
    raw: list[_RawAttribute], context: str, schema: _Schema = _STEP_SCHEMA
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    written_keys: dict[str, str] = {}
    for attribute in raw:
        key = schema.aliases.get(attribute.key, attribute.key)
        convert = schema.converters.get(key)
        if convert is None:
            reason = f"unknown attribute {attribute.key!r}; {schema.known_list()}"
            raise _invalid(attribute.text, context, reason)

        if key in written_keys:
            reason = f"{key} is given more than once"
            if written_keys[key] != attribute.key:
                reason = (
                    f"{written_keys[key]} and {attribute.key} are the same attribute"
                )
            raise _invalid(attribute.text, context, reason)
        written_keys[key] = attribute.key

        try:
            attributes[key] = convert(attribute)
        except ValueError as error:
            raise _invalid(attribute.text, context, str(error)) from None
    return attributes


def _invalid(text: str, context: str, reason: str) -> ValueError:
    return ValueError(f"invalid attribute {text!r} in {context}: {reason}")


def _invalid_syntax(text: str, context: str, reason: str) -> ValueError:
    return ValueError(f"invalid attributes {text!r} in {context}: {reason}")


# --- Syntax --------------------------------------------------------------------


def _typed(text: str) -> Any:
    if text == "true":
        return True
    if text == "false":
        return False
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    return text


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _unquote(value: str) -> str:
    return _ESCAPE.sub(r"\1", value[1:-1])


def _word_at(text: str, start: int) -> str:
    """Return the attribute text at ``start``, up to whitespace or ``}``."""
    match = _WORD.match(text, start)
    return match.group() if match else text[start:]


def _explain_bad_pair(text: str, start: int, schema: _Schema) -> str:
    """Say why no valid ``key=value`` or bare key starts at ``start``."""
    key = _KEY.match(text, start)
    if key is None and text[start] in ".#":
        # Pandoc writes classes and ids as {.class #id}; runbook has neither.
        word = _word_at(text, start)
        return f"unknown attribute {word!r}; {schema.known_list()}"
    if key is None:
        return "expected key=value or a bare key"

    pos = key.end()
    if text[pos] != "=":
        return f"unexpected {text[pos]!r} after the key {key.group()!r}"

    pos += 1
    if pos == len(text) or text[pos] in " \t\n\r}":
        return f"{key.group()} has no value; write {key.group()}=VALUE"
    if text[pos] in "\"'":
        quoted = _QUOTED.match(text, pos)
        if quoted is None:
            return f"missing closing {text[pos]} quote"
        return f"unexpected {text[quoted.end()]!r} after the value of {key.group()}"

    bare = _BARE_VALUE.match(text, pos)
    assert bare is not None
    return f"unexpected {text[bare.end()]!r} in the value of {key.group()}"


def _scan_pairs(
    text: str,
    pos: int,
    context: str,
    *,
    braced: bool,
    schema: _Schema = _STEP_SCHEMA,
) -> tuple[list[_RawAttribute], int]:
    """Read ``key=value`` pairs from ``pos`` up to ``}`` (if braced) or the end.

    Returns the pairs and the position after the closing brace.
    """
    pairs: list[_RawAttribute] = []
    while True:
        pos = _skip_space(text, pos)
        if pos == len(text):
            if braced:
                raise _invalid_syntax(text, context, "missing closing '}'")
            return pairs, pos
        if text[pos] == "}":
            if not braced:
                raise _invalid_syntax(text, context, "unexpected '}'")
            return pairs, pos + 1

        match = _PAIR.match(text, pos)
        if match is None:
            reason = _explain_bad_pair(text, pos, schema)
            raise _invalid(_word_at(text, pos), context, reason)

        key, value = match.group("key", "value")
        if value is None:
            pairs.append(_RawAttribute(key, _FLAG, key, False))
        elif value[0] in "\"'":
            pairs.append(_RawAttribute(key, _unquote(value), match.group(), False))
        else:
            pairs.append(_RawAttribute(key, _typed(value), match.group(), True))
        pos = match.end()


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"{key} is given more than once")
        seen[key] = value
    return seen


def _parse_json(text: str, pos: int, context: str) -> tuple[list[_RawAttribute], int]:
    """Read a JSON object that starts at ``pos``; return its pairs and end."""
    decoder = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys)
    try:
        value, end = decoder.raw_decode(text, pos)
    except json.JSONDecodeError as error:
        reason = f"invalid JSON: {error.msg} at column {error.colno}"
        raise _invalid_syntax(text, context, reason) from None
    except ValueError as error:
        raise _invalid_syntax(text, context, str(error)) from None

    pairs = [
        _RawAttribute(key, item, f"{json.dumps(key)}: {json.dumps(item)}", False)
        for key, item in value.items()
    ]
    return pairs, end


def _parse_braced(
    text: str, pos: int, context: str, schema: _Schema = _STEP_SCHEMA
) -> dict[str, Any]:
    """Parse the ``{...}`` group at ``pos``, which must end the text."""
    inner = _skip_space(text, pos + 1)
    if inner < len(text) and text[inner] == '"':
        pairs, end = _parse_json(text, pos, context)
    else:
        pairs, end = _scan_pairs(text, pos + 1, context, braced=True, schema=schema)

    if text[end:].strip():
        reason = f"unexpected text {text[end:].strip()!r} after the closing '}}'"
        raise _invalid_syntax(text, context, reason)
    return _validate(pairs, context, schema)


# --- Public functions ------------------------------------------------------------


def split_info_string(info: str) -> tuple[str, str]:
    """Split a fence info string into its language and the text after it.

    The info string is trimmed first, as CommonMark says (markdown-it-py
    keeps the leading space of ```` ``` bash ````). The language is the first
    word, ended by whitespace or ``{``. An info string that starts with ``{``,
    such as ```` ``` {"name":"x"} ````, has no language.
    """
    info = info.strip()
    if not info or info.startswith("{"):
        return "", info

    match = _LANGUAGE.match(info)
    end = match.end() if match else 0
    return info[:end], info[end:].strip()


def parse_info_string(info: str) -> tuple[str, dict[str, Any]]:
    """Parse a fence info string into its language and validated attributes.

    Raises ValueError when the attributes are malformed, unknown or mistyped.
    """
    language, rest = split_info_string(info)
    return language, parse_info_attributes(rest)


def parse_info_attributes(
    text: str, output: bool = False, language: str = ""
) -> dict[str, Any]:
    """Parse the attributes that follow the language in a fence info string.

    Text that does not start with ``{`` is left to other tools (for example
    ``title="deploy.sh"``) and gives no attributes, unless it contains a brace
    outside quotes. Such a brace is taken as a misplaced attribute group: its
    own errors are reported first, then the text before it.
    With ``output``, the keys are those of an expected output block
    (``OUTPUT_ATTRIBUTES``) instead of a step's. ``language`` only shapes
    the example in error messages.
    Raises ValueError when the attributes are malformed, unknown or mistyped.
    """
    schema = _OUTPUT_SCHEMA if output else _STEP_SCHEMA
    if not text:
        return {}
    if text[0] == "{":
        return _parse_braced(text, 0, FENCE_CONTEXT, schema)

    brace = _first_unquoted_brace(text)
    if brace is None:
        _reject_unbraced_keys(text, schema, language)
        return {}
    if text[brace] == "}":
        reason = "unbalanced braces; write attributes as {key=value ...}"
        raise _invalid_syntax(text, FENCE_CONTEXT, reason)

    _parse_braced(text, brace, FENCE_CONTEXT, schema)
    reason = (
        f"unexpected text {text[:brace].strip()!r} before the '{{'; write "
        "attributes right after the language, as in bash {key=value ...}"
    )
    raise _invalid_syntax(text, FENCE_CONTEXT, reason)


def _reject_unbraced_keys(text: str, schema: _Schema, language: str) -> None:
    """Raise ValueError when a word after the language is one of our keys.

    Other words stay for other tools (``title="deploy.sh"``), but ``bash
    confirm`` or ``output regex`` would otherwise be ignored without a word.
    """
    for word in _INFO_WORD.findall(text):
        key = word.split("=", 1)[0]
        if key in schema.converters or key in schema.aliases:
            raise _invalid_syntax(
                text,
                FENCE_CONTEXT,
                f"{key!r} outside braces is not read as an attribute; write "
                f"it in braces after the language, as in {language} {{{word}}}",
            )


def _first_unquoted_brace(text: str) -> int | None:
    """Return the offset of the first ``{`` or ``}`` outside quotes, or None.

    A quote without its closing quote is an ordinary character here.
    """
    pos = 0
    while pos < len(text):
        char = text[pos]
        quoted = _QUOTED.match(text, pos) if char in "\"'" else None
        if quoted:
            pos = quoted.end()
        elif char in "{}":
            return pos
        else:
            pos += 1
    return None


def parse_comment_annotations(text: str) -> dict[str, Any] | None:
    """Parse an ``<!-- runbook: key=value ... -->`` HTML comment.

    Returns None when ``text`` is not a runbook comment. The pairs may also be
    written in braces or as a JSON object. Text after the comment's closing
    ``-->`` is ignored. Raises ValueError when the attributes are invalid.
    """
    stripped = text.strip()
    if not stripped.startswith("<!--"):
        return None

    end = stripped.find("-->", 4)
    if end == -1:
        return None

    body = stripped[4:end].strip()
    if body[:8].lower() != "runbook:":
        return None

    body = body[8:].strip()
    if body.startswith("{"):
        return _parse_braced(body, 0, COMMENT_CONTEXT)

    pairs, _ = _scan_pairs(body, 0, COMMENT_CONTEXT, braced=False)
    return _validate(pairs, COMMENT_CONTEXT)
