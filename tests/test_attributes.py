"""Attribute grammar: fence info strings and ``<!-- runbook: ... -->`` comments."""

from __future__ import annotations

from typing import Any

import pytest

from runbook.attributes import (
    ATTRIBUTE_ALIASES,
    INHERITED_ATTRIBUTES,
    KNOWN_ATTRIBUTES,
    OUTPUT_ATTRIBUTES,
    parse_comment_annotations,
    parse_info_attributes,
    parse_info_string,
    split_info_string,
)

KNOWN_LIST = (
    "confirm, exit, expect, interactive, name, skip-test, target, timeout, when"
)

EXPECT_FORMS = (
    'must be an exit status from 0 to 255, a list of them (expect="0,1" or '
    "[0, 1]) or any"
)

# (info string, language, attributes)
VALID_INFO: list[tuple[str, str, dict[str, Any]]] = [
    ("bash", "bash", {}),
    ("console", "console", {}),
    ("bash {name=setup timeout=5}", "bash", {"name": "setup", "timeout": 5}),
    (
        'sh {"name":"check","interactive":false}',
        "sh",
        {"name": "check", "interactive": False},
    ),
    (' {"name":"x"}', "", {"name": "x"}),
    ("bash{name=x}", "bash", {"name": "x"}),
    ("bash {}", "bash", {}),
    ("bash { }", "bash", {}),
    ("bash {confirm}", "bash", {"confirm": True}),
    (
        "bash {confirm=false interactive=true}",
        "bash",
        {"confirm": False, "interactive": True},
    ),
    ("bash {timeout=1.5}", "bash", {"timeout": 1.5}),
    ('sh { "timeout": 2.5 }', "sh", {"timeout": 2.5}),
    (
        "bash {name='two words' when=\"systemd, compose\"}",
        "bash",
        {"name": "two words", "when": ("systemd", "compose")},
    ),
    (r'bash {name="say \"hi\""}', "bash", {"name": 'say "hi"'}),
    ("bash {name=42}", "bash", {"name": "42"}),
    ("bash {target=local}", "bash", {"target": "local"}),
    ("bash {target=remote}", "bash", {"target": "remote"}),
    ("bash {when=compose}", "bash", {"when": ("compose",)}),
    ("bash {when=systemd,compose,systemd}", "bash", {"when": ("systemd", "compose")}),
    ('sh {"when": ["systemd", "k8s.prod"]}', "sh", {"when": ("systemd", "k8s.prod")}),
    ("bash {expect=any}", "bash", {"expect": "any"}),
    ("bash {expect=0,1}", "bash", {"expect": (0, 1)}),
    ('bash {expect="3, 1, 3"}', "bash", {"expect": (1, 3)}),
    ('sh {"expect": [2, 0]}', "sh", {"expect": (0, 2)}),
    ('sh {"expect": [7]}', "sh", {"expect": 7}),
    ('sh {"expect": "any"}', "sh", {"expect": "any"}),
    ("bash {exit=0,255}", "bash", {"expect": (0, 255)}),
    ("bash {exit=3}", "bash", {"expect": 3}),
    ("bash {expect=0}", "bash", {"expect": 0}),
    ('bash {skip-test="needs a cluster"}', "bash", {"skip-test": "needs a cluster"}),
    (
        "bash {target=local when=compose}",
        "bash",
        {"target": "local", "when": ("compose",)},
    ),
    ('bash title="deploy.sh"', "bash", {}),
    ('bash title="{braces}.sh"', "bash", {}),
    ("bash\t{timeout=5}", "bash", {"timeout": 5}),
]

# (info string, the whole ValueError message)
INVALID_INFO: list[tuple[str, str]] = [
    (
        "bash {name=}",
        "invalid attribute 'name=' in fence info string: "
        "name has no value; write name=VALUE",
    ),
    (
        "bash {timeout=abc}",
        "invalid attribute 'timeout=abc' in fence info string: "
        "timeout must be a positive number of seconds",
    ),
    (
        "bash {timeout=0}",
        "invalid attribute 'timeout=0' in fence info string: "
        "timeout must be a positive number of seconds",
    ),
    (
        'bash {timeout="5"}',
        "invalid attribute 'timeout=\"5\"' in fence info string: "
        "timeout must be a positive number of seconds",
    ),
    (
        "bash {timeout=true}",
        "invalid attribute 'timeout=true' in fence info string: "
        "timeout must be a positive number of seconds",
    ),
    (
        "bash {foo=1}",
        "invalid attribute 'foo=1' in fence info string: "
        f"unknown attribute 'foo'; known attributes: {KNOWN_LIST}",
    ),
    (
        "bash {name=x",
        "invalid attributes '{name=x' in fence info string: missing closing '}'",
    ),
    (
        "bash name=x}",
        "invalid attributes 'name=x}' in fence info string: "
        "unbalanced braces; write attributes as {key=value ...}",
    ),
    (
        "bash {timeout=5}}",
        "invalid attributes '{timeout=5}}' in fence info string: "
        "unexpected text '}' after the closing '}'",
    ),
    (
        'sh {"name": }',
        "invalid attributes '{\"name\": }' in fence info string: "
        "invalid JSON: Expecting value at column 10",
    ),
    (
        'sh {"name":"a","name":"b"}',
        'invalid attributes \'{"name":"a","name":"b"}\' in fence info string: '
        "name is given more than once",
    ),
    (
        "bash {name=a name=b}",
        "invalid attribute 'name=b' in fence info string: name is given more than once",
    ),
    (
        "bash {exit=1 expect=1}",
        "invalid attribute 'expect=1' in fence info string: "
        "exit and expect are the same attribute",
    ),
    (
        "bash {expect=256}",
        f"invalid attribute 'expect=256' in fence info string: expect {EXPECT_FORMS}",
    ),
    (
        "bash {expect=1.5}",
        f"invalid attribute 'expect=1.5' in fence info string: expect {EXPECT_FORMS}",
    ),
    (
        "bash {expect=0,x}",
        f"invalid attribute 'expect=0,x' in fence info string: expect {EXPECT_FORMS}",
    ),
    (
        "bash {expect=some}",
        f"invalid attribute 'expect=some' in fence info string: expect {EXPECT_FORMS}",
    ),
    (
        'sh {"expect": []}',
        "invalid attribute '\"expect\": []' in fence info string: "
        f"expect {EXPECT_FORMS}; the list is empty",
    ),
    (
        "bash {expect}",
        "invalid attribute 'expect' in fence info string: "
        'expect needs a value: expect=0, expect="0,1" or expect=any',
    ),
    (
        "bash {target=web-1}",
        "invalid attribute 'target=web-1' in fence info string: "
        "target must be local (a shell on this machine) or remote (the run's "
        "--target, the default), not 'web-1'",
    ),
    (
        'bash {when="$ENV == prod"}',
        "invalid attribute 'when=\"$ENV == prod\"' in fence info string: "
        "when must name deployments, as in when=systemd or "
        "when=\"systemd,compose\"; '$ENV == prod' is not a name "
        "(letters, digits, '.', '_' and '-')",
    ),
    (
        "bash {when=a,,b}",
        "invalid attribute 'when=a,,b' in fence info string: "
        "when must name deployments, as in when=systemd or "
        "when=\"systemd,compose\"; '' is not a name "
        "(letters, digits, '.', '_' and '-')",
    ),
    (
        "bash {confirm=yes}",
        "invalid attribute 'confirm=yes' in fence info string: "
        "confirm must be true or false",
    ),
    (
        "bash {skip-test}",
        "invalid attribute 'skip-test' in fence info string: "
        'skip-test needs a reason, as in skip-test="needs a cluster"',
    ),
    (
        "bash {name}",
        "invalid attribute 'name' in fence info string: "
        "name needs a value, as in name=VALUE",
    ),
    (
        'bash {name=""}',
        "invalid attribute 'name=\"\"' in fence info string: name must not be empty",
    ),
    (
        'sh {"name": 5}',
        "invalid attribute '\"name\": 5' in fence info string: name must be a string",
    ),
    (
        'bash {name="open}',
        "invalid attribute 'name=\"open' in fence info string: "
        'missing closing " quote',
    ),
    (
        'bash {name="a"b}',
        "invalid attribute 'name=\"a\"b' in fence info string: "
        "unexpected 'b' after the value of name",
    ),
    (
        "bash {name=a{b}",
        "invalid attribute 'name=a{b' in fence info string: "
        "unexpected '{' in the value of name",
    ),
    (
        "bash {.class}",
        "invalid attribute '.class' in fence info string: "
        f"unknown attribute '.class'; known attributes: {KNOWN_LIST}",
    ),
    (
        "bash {name=x #id}",
        "invalid attribute '#id' in fence info string: "
        f"unknown attribute '#id'; known attributes: {KNOWN_LIST}",
    ),
    (
        'bash title="x" {.class}',
        "invalid attribute '.class' in fence info string: "
        f"unknown attribute '.class'; known attributes: {KNOWN_LIST}",
    ),
    (
        'bash title="x" {name=setup}',
        "invalid attributes 'title=\"x\" {name=setup}' in fence info string: "
        "unexpected text 'title=\"x\"' before the '{'; write attributes right "
        "after the language, as in bash {key=value ...}",
    ),
    (
        'bash title="x" {name=setup',
        "invalid attributes 'title=\"x\" {name=setup' in fence info string: "
        "missing closing '}'",
    ),
    (
        "bash {+}",
        "invalid attribute '+' in fence info string: expected key=value or a bare key",
    ),
    (
        "bash {name:x}",
        "invalid attribute 'name:x' in fence info string: "
        "unexpected ':' after the key 'name'",
    ),
]

# (comment text, attributes)
VALID_COMMENTS: list[tuple[str, dict[str, Any]]] = [
    ("<!-- runbook: timeout=30 confirm -->", {"timeout": 30, "confirm": True}),
    ('<!--runbook:{"target":"local"}-->', {"target": "local"}),
    (
        '<!-- runbook: when=compose skip-test="needs compose" -->',
        {"when": ("compose",), "skip-test": "needs compose"},
    ),
    ("<!-- runbook: {name=x} -->", {"name": "x"}),
    ("<!-- Runbook: name=x -->\n", {"name": "x"}),
    (
        "<!-- runbook:\n  name='two\nlines'\n  exit=2\n-->",
        {"name": "two\nlines", "expect": 2},
    ),
    ("<!-- runbook: -->", {}),
]

NOT_ANNOTATIONS = [
    "<!-- a plain comment -->",
    "<div>runbook: name=x</div>",
    "<!-- runbook -->",
    "<!-- runbook: name=x",
    "<!-- see runbook: name=x -->",
]

# (comment text, the whole ValueError message)
INVALID_COMMENTS: list[tuple[str, str]] = [
    (
        "<!-- runbook: timeout=abc -->",
        "invalid attribute 'timeout=abc' in runbook comment: "
        "timeout must be a positive number of seconds",
    ),
    (
        "<!-- runbook: name=x} -->",
        "invalid attributes 'name=x}' in runbook comment: unexpected '}'",
    ),
    (
        "<!-- runbook: {name=x -->",
        "invalid attributes '{name=x' in runbook comment: missing closing '}'",
    ),
    (
        "<!-- runbook: colour=red -->",
        "invalid attribute 'colour=red' in runbook comment: "
        f"unknown attribute 'colour'; known attributes: {KNOWN_LIST}",
    ),
]


@pytest.mark.parametrize(("info", "language", "attributes"), VALID_INFO)
def test_info_string_valid(info: str, language: str, attributes: dict) -> None:
    parsed_language, parsed_attributes = parse_info_string(info)

    assert parsed_language == language
    assert parsed_attributes == attributes


@pytest.mark.parametrize(("info", "message"), INVALID_INFO)
def test_info_string_invalid(info: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_info_string(info)

    assert str(caught.value) == message


def test_info_string_typed_values() -> None:
    _, attributes = parse_info_string("bash {timeout=5 confirm=false name=7}")

    assert type(attributes["timeout"]) is int
    assert attributes["confirm"] is False
    assert attributes["name"] == "7"


@pytest.mark.parametrize(
    ("info", "language", "rest"),
    [
        ("bash", "bash", ""),
        ("bash {name=x}", "bash", "{name=x}"),
        ("bash{name=x}", "bash", "{name=x}"),
        (' {"name":"x"}', "", '{"name":"x"}'),
        ("{name=x}", "", "{name=x}"),
        ("", "", ""),
        ("python title=x.py", "python", "title=x.py"),
    ],
)
def test_split_info_string(info: str, language: str, rest: str) -> None:
    assert split_info_string(info) == (language, rest)


@pytest.mark.parametrize(("text", "attributes"), VALID_COMMENTS)
def test_comment_annotations_valid(text: str, attributes: dict) -> None:
    assert parse_comment_annotations(text) == attributes


@pytest.mark.parametrize("text", NOT_ANNOTATIONS)
def test_comment_not_annotation(text: str) -> None:
    assert parse_comment_annotations(text) is None


@pytest.mark.parametrize(("text", "message"), INVALID_COMMENTS)
def test_comment_annotations_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_comment_annotations(text)

    assert str(caught.value) == message


def test_known_attributes_registry() -> None:
    known = sorted(KNOWN_ATTRIBUTES)

    assert known == [
        "confirm",
        "expect",
        "interactive",
        "name",
        "skip-test",
        "target",
        "timeout",
        "when",
    ]
    assert dict(ATTRIBUTE_ALIASES) == {"exit": "expect"}


def test_output_attributes_registry() -> None:
    assert sorted(OUTPUT_ATTRIBUTES) == ["regex"]
    assert "name" not in INHERITED_ATTRIBUTES
    assert KNOWN_ATTRIBUTES - {"name"} == INHERITED_ATTRIBUTES


@pytest.mark.parametrize(
    ("text", "attributes"),
    [("", {}), ("{regex}", {"regex": True}), ('{"regex": false}', {"regex": False})],
)
def test_output_attributes_valid(text: str, attributes: dict) -> None:
    assert parse_info_attributes(text, output=True) == attributes


def test_output_attributes_reject_step_keys() -> None:
    with pytest.raises(ValueError) as caught:
        parse_info_attributes("{timeout=5}", output=True)

    assert str(caught.value) == (
        "invalid attribute 'timeout=5' in fence info string: unknown attribute "
        "'timeout'; known attributes of an output block: regex"
    )
