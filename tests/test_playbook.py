"""Parser tests: Markdown fixture files and the sections and steps they give.

Each file under ``fixtures/markdown`` has one entry in ``CASES`` (it parses) or
``ERROR_CASES`` (it raises), and each aspect of the result has its own test.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runbook.errors import (
    AmbiguousSection,
    AttributeSyntaxError,
    PlaybookDecodeError,
    PlaybookError,
    PlaybookNotFound,
    SectionNotFound,
)
from runbook.playbook import (
    Playbook,
    Section,
    Step,
    load_playbook,
    parse_playbook,
    slugify,
    unique_slugs,
)
from runbook.shell_blocks import comment_lines, split_console

FIXTURES = Path(__file__).parent / "fixtures" / "markdown"
PLAYBOOKS = Path(__file__).parent.parent / "playbooks"


@dataclass(frozen=True)
class ExpectedStep:
    code: str
    language: str
    lines: tuple[int, int]
    heading_path: tuple[str, ...]
    description: str = ""
    comments: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    expected_output: str | None = None


@dataclass(frozen=True)
class Expected:
    # (level, title, slug) of every section below the root, in document order.
    sections: list[tuple[int, str, str]]
    # (start_line, end_line) of the same sections.
    section_lines: list[tuple[int, int]]
    steps: list[ExpectedStep]
    # (line, text the message contains)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    # (language, start_line, end_line) of non-step code blocks, root included.
    context: list[tuple[str, int, int]] = field(default_factory=list)
    front_matter: dict[str, Any] = field(default_factory=dict)
    # title -> attributes, for sections that have any.
    section_attributes: dict[str, dict[str, Any]] = field(default_factory=dict)


UNCLOSED = "code fence is not closed"
BACKTICK_INFO = "line is not a code fence because its info string contains a backtick"
EMPTY = "shell block is empty, so its step runs nothing"

CASES: dict[str, Expected] = {
    "case01_fences": Expected(
        sections=[
            (1, "Tilde and long fences", "tilde-and-long-fences"),
            (2, "Backtick in the info string", "backtick-in-the-info-string"),
        ],
        section_lines=[(1, 25), (21, 25)],
        steps=[
            ExpectedStep(
                "cat <<'EOF' > notes.md\n```\ninner\n```\nEOF\n",
                "bash",
                (5, 11),
                ("Tilde and long fences",),
                "A tilde fence whose heredoc contains backtick lines.",
            ),
            ExpectedStep(
                "echo start\n```\necho still inside\n",
                "sh",
                (15, 19),
                ("Tilde and long fences",),
                "A four-backtick fence that contains a line of three backticks.",
            ),
        ],
        # The bare ``` on line 25 opens a block of its own that nothing closes.
        warnings=[(23, BACKTICK_INFO), (25, UNCLOSED)],
        context=[("", 25, 25)],
    ),
    "case02_lists": Expected(
        sections=[(1, "Fences in list items", "fences-in-list-items")],
        section_lines=[(1, 28)],
        steps=[
            ExpectedStep(
                "mkdir -p /tmp/demo\n",
                "bash",
                (5, 7),
                ("Fences in list items",),
                "Create the directory:",
            ),
            ExpectedStep(
                "printf '%s\\n' one\n"
                "printf '%s\\n' \"  two\"\n"
                "  echo indented-by-two\n",
                "sh",
                (12, 16),
                ("Fences in list items",),
                "Print two lines:\n\nThe second keeps its spaces:",
            ),
            ExpectedStep(
                "echo quoted\n",
                "bash",
                (26, 28),
                ("Fences in list items",),
                "Run it from a quote:",
            ),
        ],
        warnings=[(20, "so it is an indented code block and not a step")],
        context=[("", 20, 22)],
    ),
    "case03_attributes": Expected(
        sections=[(1, "Attributes", "attributes")],
        section_lines=[(1, 13)],
        steps=[
            ExpectedStep(
                "echo setup\n",
                "bash",
                (3, 5),
                ("Attributes",),
                attributes={"name": "setup", "timeout": 5},
            ),
            ExpectedStep(
                "echo check\n",
                "sh",
                (7, 9),
                ("Attributes",),
                attributes={"name": "check", "interactive": False},
            ),
        ],
        warnings=[(11, "code fence has attributes but no language")],
        context=[("", 11, 13)],
    ),
    "case04_crlf_bom": Expected(
        sections=[(1, "Deploy", "deploy")],
        section_lines=[(1, 6)],
        steps=[ExpectedStep("echo one\necho two\n", "bash", (3, 6), ("Deploy",))],
    ),
    "case05_headings": Expected(
        sections=[
            (1, "Setup", "setup"),
            (2, "Setup 1", "setup-1"),
            (2, "Setup", "setup-2"),
            (2, "Run make via docs 🚀", "run-make-via-docs-"),
            (3, "Emphasis and strong code", "emphasis-and-strong-code"),
        ],
        section_lines=[(1, 14), (3, 4), (5, 7), (8, 14), (14, 14)],
        steps=[
            ExpectedStep("make\n", "bash", (10, 12), ("Setup", "Run make via docs 🚀"))
        ],
    ),
    "case14_toml_front_matter": Expected(
        sections=[(1, "Restart", "restart")],
        section_lines=[(11, 15)],
        steps=[
            ExpectedStep(
                "echo before heading\n",
                "bash",
                (7, 9),
                (),
                "Text before the first heading.",
            ),
            ExpectedStep("systemctl restart app\n", "sh", (13, 15), ("Restart",)),
        ],
        front_matter={"title": "Restart", "owner": "ops"},
    ),
    "case14_no_steps": Expected(
        sections=[
            (1, "Notes only", "notes-only"),
            (2, "Config", "config"),
            (2, "Empty section", "empty-section"),
        ],
        section_lines=[(1, 11), (5, 10), (11, 11)],
        steps=[],
        context=[("yaml", 7, 9)],
    ),
    "console": Expected(
        sections=[(1, "Console", "console")],
        section_lines=[(1, 13)],
        steps=[
            ExpectedStep(
                "systemctl status app \\\n"
                "    --no-pager\n"
                "# show the version\n"
                "app --version\n",
                "console",
                (5, 13),
                ("Console",),
                "Check the service:",
                comments=("# show the version",),
                expected_output="● app.service - App\n"
                "   Active: active (running)\n"
                "app 1.2.3\n",
            )
        ],
    ),
    "console_continuation": Expected(
        sections=[(1, "Console continuations", "console-continuations")],
        section_lines=[(1, 27)],
        steps=[
            ExpectedStep(
                "cp new.yaml \\\n"
                "  etc/app/config.yaml\n"
                "cat <<'EOF' > notes.txt\n"
                "first $HOME\n"
                "\n"
                "EOF\n"
                'echo "two\n'
                'lines"\n',
                "console",
                (5, 16),
                ("Console continuations",),
                "Install the new config:",
                expected_output="two\nlines\n",
            ),
            ExpectedStep(
                "diff old.txt new.txt |\nhead -n 2\n",
                "console",
                (20, 27),
                ("Console continuations",),
                "Compare and inspect as root:",
                expected_output="1c1\n< old line\n# id -u\n0\n",
            ),
        ],
        warnings=[(25, "looks like a prompt but only '$ ' starts a command")],
    ),
    "console_compound": Expected(
        sections=[(1, "Compound commands", "compound-commands")],
        section_lines=[(1, 66)],
        steps=[
            ExpectedStep(
                "for i in 1 2; do\n  echo item-$i\ndone\n",
                "console",
                (5, 11),
                ("Compound commands",),
                "A loop as bash shows it, with its continuation prompts:",
                expected_output="item-1\nitem-2\n",
            ),
            ExpectedStep(
                "for i in 1 2; do\n  echo item-$i\ndone\n",
                "console",
                (15, 21),
                ("Compound commands",),
                "The same loop written without the prompts:",
                expected_output="item-1\nitem-2\n",
            ),
            ExpectedStep(
                "if [ -d / ]; then\n"
                "  echo root exists\n"
                "fi\n"
                "greet() {\n"
                '  echo "hello $1"\n'
                "}\n"
                "greet ops\n"
                'n=0; while [ "$n" -lt 2 ]; do\n'
                '  n=$((n + 1)); echo "n=$n"\n'
                "done\n"
                "case start in\n"
                "  start) echo starting ;;\n"
                "  *) echo unknown ;;\n"
                "esac\n"
                "{ echo one\n"
                "  echo two; }\n",
                "console",
                (25, 49),
                ("Compound commands",),
                "Conditions, functions, loops, case and groups:",
                expected_output="root exists\nhello ops\n"
                "n=1\nn=2\nstarting\none\ntwo\n",
            ),
            ExpectedStep(
                "if true; then\n"
                "  echo yes\n"
                "fi\n"
                "until true; do\n"
                "  :\n"
                "done\n"
                "function shout {\n"
                '  echo "$1!"\n'
                "}\n"
                "shout hey\n",
                "console",
                (53, 66),
                ("Compound commands",),
                "Without prompts, bash's reserved words decide where a command ends:",
                expected_output="yes\nhey!\n",
            ),
        ],
    ),
    "descriptions": Expected(
        sections=[
            (1, "Descriptions", "descriptions"),
            (2, "Child", "child"),
        ],
        section_lines=[(1, 34), (30, 34)],
        steps=[
            ExpectedStep(
                "#!/usr/bin/env bash\n"
                "# drain the queue\n"
                "worker drain  # trailing comments are not collected\n"
                "cat <<EOF > /tmp/note\n"
                "# not a comment: heredoc body\n"
                "EOF\n",
                "bash",
                (9, 16),
                ("Descriptions",),
                "Stop the worker before you touch the queue. "
                "It drains in about a minute.\n\n"
                "Check the dashboard first.\n\n"
                "Then run drain:",
                comments=("# drain the queue",),
            ),
            # The yaml block takes "Write the config:" as its own prose.
            ExpectedStep("worker reload\n", "bash", (24, 26), ("Descriptions",)),
            ExpectedStep("print done\n", "zsh", (32, 34), ("Descriptions", "Child")),
        ],
        context=[("yaml", 20, 22), ("", 28, 28)],
    ),
    "empty_blocks": Expected(
        sections=[(1, "Empty blocks", "empty-blocks")],
        section_lines=[(1, 12)],
        steps=[
            ExpectedStep("", "bash", (3, 4), ("Empty blocks",)),
            ExpectedStep(
                "",
                "console",
                (6, 8),
                ("Empty blocks",),
                expected_output="no prompt here\n",
            ),
            ExpectedStep("\n", "sh", (10, 12), ("Empty blocks",)),
        ],
        warnings=[
            (3, EMPTY),
            (6, "console block has no '$ ' command lines"),
            (10, EMPTY),
        ],
    ),
    "html_comments": Expected(
        sections=[(1, "Maintenance", "maintenance"), (2, "Verify", "verify")],
        section_lines=[(1, 25), (19, 25)],
        steps=[
            # Section attributes apply to every step beneath the section.
            ExpectedStep(
                "app cache clear\n",
                "bash",
                (13, 15),
                ("Maintenance",),
                "Clear the cache:",
                attributes={"timeout": 30, "confirm": True},
            ),
            ExpectedStep(
                "app status\n",
                "bash",
                (23, 25),
                ("Maintenance", "Verify"),
                attributes={"timeout": 30, "confirm": True, "target": "local"},
            ),
        ],
        warnings=[(17, "runbook comment is ignored")],
        section_attributes={
            "Maintenance": {"timeout": 30, "confirm": True},
            "Verify": {"target": "local"},
        },
    ),
    "lookup": Expected(
        sections=[
            (1, "Incident Response", "incident-response"),
            (2, "Incident: Storage Full", "incident-storage-full"),
            (3, "Recovery", "recovery"),
            (2, "Storage", "storage"),
            (3, "Recovery", "recovery-1"),
            (2, "Node Down / Unresponsive", "node-down--unresponsive"),
            (3, "Diagnose", "diagnose"),
            (2, "Setup", "setup"),
            (2, "Setup", "setup-1"),
            (2, "Restore Backup", "restore-backup"),
            (2, "Backup Check", "backup-check"),
            (2, "Deploy Setup", "deploy-setup"),
        ],
        section_lines=[
            (1, 23),
            (3, 6),
            (5, 6),
            (7, 10),
            (9, 10),
            (11, 14),
            (13, 14),
            (15, 16),
            (17, 18),
            (19, 20),
            (21, 22),
            (23, 23),
        ],
        steps=[],
    ),
    "tabs": Expected(
        sections=[(1, "Tabs", "tabs")],
        section_lines=[(1, 13)],
        steps=[
            ExpectedStep(
                "printf 'a\\tb\\n'\n",
                "bash",
                (5, 7),
                ("Tabs",),
                "Item with a tab-indented fence:",
            ),
            ExpectedStep(
                "cat <<-EOF\n\tindented with a tab\n\tEOF\n", "bash", (9, 13), ("Tabs",)
            ),
        ],
    ),
    "unclosed_fence": Expected(
        sections=[(1, "Unclosed", "unclosed")],
        section_lines=[(1, 8)],
        steps=[
            ExpectedStep(
                "echo never closed\n\n## Not a heading\n",
                "bash",
                (5, 8),
                ("Unclosed",),
                "Run this:",
                comments=("## Not a heading",),
            )
        ],
        warnings=[(5, UNCLOSED)],
    ),
    "yaml_front_matter": Expected(
        sections=[(1, "Restart", "restart")],
        section_lines=[(5, 9)],
        steps=[ExpectedStep("systemctl restart app\n", "bash", (7, 9), ("Restart",))],
        front_matter={"title": "Restart app", "tags": ["ops", "web"]},
    ),
}

# file stem -> (error class, line, message after "PATH:LINE: ")
ERROR_CASES: dict[str, tuple[type[PlaybookError], int, str]] = {
    "case03_bad_attribute": (
        AttributeSyntaxError,
        3,
        "invalid attribute 'name=' in fence info string: "
        "name has no value; write name=VALUE",
    ),
    "bad_attribute_after_title": (
        AttributeSyntaxError,
        5,
        "invalid attribute '.class' in fence info string: unknown attribute "
        "'.class'; known attributes: confirm, exit, expect, interactive, name, "
        "skip-test, target, timeout, when",
    ),
    "bad_comment_annotation": (
        AttributeSyntaxError,
        2,
        "invalid attribute 'timeout=abc' in runbook comment: "
        "timeout must be a positive number of seconds",
    ),
    "bad_yaml_front_matter": (
        PlaybookError,
        3,
        "invalid YAML front matter: expected ',' or ']', but got '<stream end>'",
    ),
    "bad_toml_front_matter": (
        PlaybookError,
        3,
        "invalid TOML front matter: Invalid value",
    ),
    "unclosed_front_matter": (
        PlaybookError,
        1,
        "front matter is not closed; end it with a '---' line",
    ),
}


def load_case(name: str) -> Playbook:
    return load_playbook(str(FIXTURES / f"{name}.md"))


def all_steps(playbook: Playbook) -> tuple[Step, ...]:
    return playbook.root.all_steps()


cases = pytest.mark.parametrize(
    ("name", "expected"), list(CASES.items()), ids=list(CASES)
)


# --- Fixture files --------------------------------------------------------------


def test_every_fixture_has_expectation() -> None:
    stems = {path.stem for path in FIXTURES.glob("*.md")}

    assert stems == set(CASES) | set(ERROR_CASES)


@cases
def test_fixture_sections(name: str, expected: Expected) -> None:
    playbook = load_case(name)

    found = [(s.level, s.title, s.slug) for s in playbook.sections()]
    assert found == expected.sections


@cases
def test_fixture_section_lines(name: str, expected: Expected) -> None:
    playbook = load_case(name)

    found = [(s.start_line, s.end_line) for s in playbook.sections()]
    assert found == expected.section_lines


@cases
def test_fixture_step_count(name: str, expected: Expected) -> None:
    assert len(all_steps(load_case(name))) == len(expected.steps)


@cases
def test_fixture_step_codes(name: str, expected: Expected) -> None:
    codes = [step.code for step in all_steps(load_case(name))]

    assert codes == [step.code for step in expected.steps]


@cases
def test_fixture_step_languages(name: str, expected: Expected) -> None:
    languages = [step.language for step in all_steps(load_case(name))]

    assert languages == [step.language for step in expected.steps]


@cases
def test_fixture_step_lines(name: str, expected: Expected) -> None:
    lines = [(step.start_line, step.end_line) for step in all_steps(load_case(name))]

    assert lines == [step.lines for step in expected.steps]


@cases
def test_fixture_step_heading_paths(name: str, expected: Expected) -> None:
    paths = [step.heading_path for step in all_steps(load_case(name))]

    assert paths == [step.heading_path for step in expected.steps]


@cases
def test_fixture_step_descriptions(name: str, expected: Expected) -> None:
    descriptions = [step.description for step in all_steps(load_case(name))]

    assert descriptions == [step.description for step in expected.steps]


@cases
def test_fixture_step_comments(name: str, expected: Expected) -> None:
    comments = [step.comments for step in all_steps(load_case(name))]

    assert comments == [step.comments for step in expected.steps]


@cases
def test_fixture_step_attributes(name: str, expected: Expected) -> None:
    attributes = [dict(step.attributes) for step in all_steps(load_case(name))]

    assert attributes == [step.attributes for step in expected.steps]


@cases
def test_fixture_step_expected_output(name: str, expected: Expected) -> None:
    outputs = [step.expected_output for step in all_steps(load_case(name))]

    assert outputs == [step.expected_output for step in expected.steps]


@cases
def test_fixture_warning_lines(name: str, expected: Expected) -> None:
    lines = [warning.line for warning in load_case(name).warnings]

    assert lines == [line for line, _ in expected.warnings]


@cases
def test_fixture_warning_messages(name: str, expected: Expected) -> None:
    warnings = load_case(name).warnings

    for warning, (_, text) in zip(warnings, expected.warnings, strict=False):
        assert text in warning.message


@cases
def test_fixture_context_blocks(name: str, expected: Expected) -> None:
    playbook = load_case(name)

    blocks = [
        (block.language, block.start_line, block.end_line)
        for section in playbook.root.walk()
        for block in section.context
    ]
    assert blocks == expected.context


@cases
def test_fixture_front_matter(name: str, expected: Expected) -> None:
    assert dict(load_case(name).front_matter) == expected.front_matter


@cases
def test_fixture_section_attributes(name: str, expected: Expected) -> None:
    playbook = load_case(name)

    found = {s.title: dict(s.attributes) for s in playbook.sections() if s.attributes}
    assert found == expected.section_attributes


@pytest.mark.parametrize(
    ("name", "error_class", "line", "message"),
    [(name, *error) for name, error in ERROR_CASES.items()],
    ids=list(ERROR_CASES),
)
def test_fixture_errors(
    name: str, error_class: type[PlaybookError], line: int, message: str
) -> None:
    path = str(FIXTURES / f"{name}.md")

    with pytest.raises(error_class) as caught:
        load_playbook(path)

    assert caught.value.line == line
    assert str(caught.value) == f"{path}:{line}: {message}"


def test_crlf_bom_fixture_bytes() -> None:
    data = (FIXTURES / "case04_crlf_bom.md").read_bytes()

    assert data.startswith(b"\xef\xbb\xbf# Deploy\r\n")
    assert data.count(b"\r\n") == data.count(b"\n")


def test_crlf_bom_code_has_no_carriage_return() -> None:
    step = all_steps(load_case("case04_crlf_bom"))[0]

    assert "\r" not in step.code


# --- Model ----------------------------------------------------------------------


def test_root_section() -> None:
    playbook = load_case("case14_toml_front_matter")

    assert playbook.root.level == 0
    assert playbook.root.title == "case14_toml_front_matter.md"
    assert playbook.root.path == ()
    assert (playbook.root.start_line, playbook.root.end_line) == (1, 15)


def test_playbook_title_is_first_heading() -> None:
    assert load_case("case05_headings").title == "Setup"


def test_playbook_title_without_heading() -> None:
    assert parse_playbook("no heading\n", "notes.md").title == "notes.md"


def test_step_name_from_attribute() -> None:
    steps = all_steps(load_case("case03_attributes"))

    assert [step.name for step in steps] == ["setup", "check"]


def test_section_children_and_all_steps() -> None:
    root = load_case("descriptions").root
    top = root.children[0]

    assert [child.title for child in top.children] == ["Child"]
    assert len(top.steps) == 2
    assert len(top.all_steps()) == 3


def test_model_is_frozen() -> None:
    step = all_steps(load_case("console"))[0]

    with pytest.raises(AttributeError):
        step.code = "rm -rf /"  # type: ignore[misc]


def test_parse_playbook_default_path() -> None:
    playbook = parse_playbook("# Title\n")

    assert playbook.path == "<string>"
    assert playbook.root.title == "<string>"


# --- Text handling --------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_line_endings_normalized(newline: str) -> None:
    text = newline.join(["# Deploy", "", "```bash", "echo one", "```", ""])

    step = all_steps(parse_playbook(text))[0]

    assert step.code == "echo one\n"
    assert (step.start_line, step.end_line) == (3, 5)


def test_bom_in_text_is_dropped() -> None:
    playbook = parse_playbook("\ufeff# Deploy\n")

    assert [s.title for s in playbook.sections()] == ["Deploy"]


def test_decode_error_names_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(b"# Caf\xc3\xa9\r\n\r\nna\xefve\r\n")

    with pytest.raises(PlaybookDecodeError) as caught:
        load_playbook(str(path))

    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: the file is not valid UTF-8")
    assert "byte 0xef at byte offset 13" in str(caught.value)
    assert str(caught.value).endswith("re-save the file as UTF-8")


def test_decode_error_offset_counts_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf# T\n\xff\n")

    with pytest.raises(PlaybookDecodeError) as caught:
        load_playbook(str(path))

    assert caught.value.line == 2
    assert "byte 0xff at byte offset 7" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.md")

    with pytest.raises(PlaybookNotFound) as caught:
        load_playbook(path)

    assert str(caught.value) == f"{path}: playbook not found; check the path"


def test_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(PlaybookNotFound):
        load_playbook(str(tmp_path))


def test_parser_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    load_case("case01_fences")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_heading_with_image_and_html() -> None:
    playbook = parse_playbook("# Deploy ![rocket](r.png) <b>now</b>\n")

    assert [s.title for s in playbook.sections()] == ["Deploy rocket now"]


def test_backtick_code_span_no_warning() -> None:
    playbook = parse_playbook("# T\n\n```ls -l``` lists files.\n")

    assert playbook.warnings == ()


def test_description_hard_break() -> None:
    text = "# T\n\nFirst line\\\nsecond line\n\n```bash\ntrue\n```\n"

    step = all_steps(parse_playbook(text))[0]

    assert step.description == "First line\nsecond line"


def test_language_is_lowercased() -> None:
    step = all_steps(parse_playbook("```Bash\ntrue\n```\n"))[0]

    assert step.language == "bash"


def test_other_tools_info_text_is_ignored() -> None:
    step = all_steps(parse_playbook('```bash title="deploy.sh"\ntrue\n```\n'))[0]

    assert dict(step.attributes) == {}


def test_non_shell_attributes_are_not_checked() -> None:
    playbook = parse_playbook("```python {title=x.py}\nprint(1)\n```\n")

    assert playbook.root.context[0].language == "python"


def test_root_annotation_at_top() -> None:
    playbook = parse_playbook("<!-- runbook: timeout=5 -->\n\n# T\n")

    assert dict(playbook.root.attributes) == {"timeout": 5}


# --- Front matter ---------------------------------------------------------------


def test_front_matter_empty_yaml() -> None:
    playbook = parse_playbook("---\n---\n# T\n")

    assert dict(playbook.front_matter) == {}
    assert playbook.root.children[0].start_line == 3


def test_front_matter_yaml_dots_closer() -> None:
    playbook = parse_playbook("---\nowner: ops\n...\n# T\n")

    assert dict(playbook.front_matter) == {"owner": "ops"}


def test_front_matter_not_a_mapping() -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook("---\n- a\n- b\n---\n", "p.md")

    expected = "p.md:1: front matter must be a mapping of keys to values, not a list"
    assert str(caught.value) == expected


def test_front_matter_only_at_top() -> None:
    playbook = parse_playbook("\n---\nowner: ops\n---\n")

    assert dict(playbook.front_matter) == {}
    assert [s.title for s in playbook.sections()] == ["owner: ops"]


def test_yaml_imported_only_for_front_matter() -> None:
    program = (
        "import sys\n"
        "from runbook.playbook import parse_playbook\n"
        "parse_playbook('# T\\n\\n```bash\\ntrue\\n```\\n')\n"
        "print('yaml' in sys.modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).parent.parent,
    )

    assert result.stdout.strip() == "False"


# --- Console blocks and comments ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "commands", "output"),
    [
        ("$ ls\nfile\n", "ls\n", "file\n"),
        ("$ echo a \\\n  b\nout\n", "echo a \\\n  b\n", "out\n"),
        ("$ one \\\n$ two\n", "one \\\n$ two\n", ""),
        ("$\n$ ls\n", "ls\n", ""),
        ("only output\n", "", "only output\n"),
        ("  $ indented\n", "", "  $ indented\n"),
        ("", "", ""),
        # A continuation line loses its "> " prompt and keeps the rest.
        (
            "$ cp new.yaml \\\n>   etc/app/config.yaml\n",
            "cp new.yaml \\\n  etc/app/config.yaml\n",
            "",
        ),
        # Once the command is complete, a "> " line is output.
        ("$ a \\\n> b \\\n> c\n> d\nout\n", "a \\\nb \\\nc\n", "> d\nout\n"),
        ('$ echo "one\n> two"\nout\n', 'echo "one\ntwo"\n', "out\n"),
        ("$ echo 'one\n>\n> two'\n", "echo 'one\n\ntwo'\n", ""),
        ("$ x=$(date \\\n> +%s)\n", "x=$(date \\\n+%s)\n", ""),
        (
            "$ ps aux |\n> grep app\nroot 1 app\n",
            "ps aux |\ngrep app\n",
            "root 1 app\n",
        ),
        ("$ true &&\n> false\n", "true &&\nfalse\n", ""),
        ("$ (cd /tmp\n> pwd)\n/tmp\n", "(cd /tmp\npwd)\n", "/tmp\n"),
        (
            "$ case a in\n> a) echo yes;;\n> esac\nyes\n",
            "case a in\na) echo yes;;\nesac\n",
            "yes\n",
        ),
        (
            "$ cat <<EOF\n> x\n> EOF\nx\n",
            "cat <<EOF\nx\nEOF\n",
            "x\n",
        ),
        (
            "$ cat <<-'END' | wc -l\n> \t$HOME\n> \tEND\n1\n",
            "cat <<-'END' | wc -l\n\t$HOME\n\tEND\n",
            "1\n",
        ),
        # Continuation lines without a prompt are kept as they are.
        ("$ echo 'a\nb'\n", "echo 'a\nb'\n", ""),
        # A "> " line after a command continues it, even one that diff printed.
        ("$ diff a b\n> added\n", "diff a b\n", "> added\n"),
        ("$ echo a # it's\nout\n", "echo a # it's\n", "out\n"),
        # Compound commands, with and without continuation prompts.
        (
            "$ for i in 1 2; do\n>   echo item-$i\n> done\nitem-1\nitem-2\n",
            "for i in 1 2; do\n  echo item-$i\ndone\n",
            "item-1\nitem-2\n",
        ),
        (
            "$ for i in 1 2; do\n  echo item-$i\ndone\nitem-1\n",
            "for i in 1 2; do\n  echo item-$i\ndone\n",
            "item-1\n",
        ),
        ("$ if true; then\n> echo a\n> fi\na\n", "if true; then\necho a\nfi\n", "a\n"),
        ("$ if true\nthen echo a\nfi\na\n", "if true\nthen echo a\nfi\n", "a\n"),
        ("$ f() {\n> echo a\n> }\n$ f\na\n", "f() {\necho a\n}\nf\n", "a\n"),
        ("$ f() {\n  echo a\n}\n$ f\na\n", "f() {\n  echo a\n}\nf\n", "a\n"),
        (
            "$ while false; do\n> :\n> done\nout\n",
            "while false; do\n:\ndone\n",
            "out\n",
        ),
        (
            "$ case a in\n  a) if true; then\n    echo yes\n  fi ;;\nesac\nyes\n",
            "case a in\n  a) if true; then\n    echo yes\n  fi ;;\nesac\n",
            "yes\n",
        ),
        ("$ { echo a\n> echo b; }\na\n", "{ echo a\necho b; }\n", "a\n"),
        ("$ { echo a\necho b; }\na\n", "{ echo a\necho b; }\n", "a\n"),
        # Reserved words count only where a command may start.
        ("$ echo if for {\nif\n", "echo if for {\n", "if\n"),
        ("$ echo done; x=(if)\nout\n", "echo done; x=(if)\n", "out\n"),
        # After a complete command, "> " lines are output (a REPL's prompt).
        (
            "$ cd /tmp\n> for i in 1; do\necho $i\ndone\n1\n",
            "cd /tmp\n",
            "> for i in 1; do\necho $i\ndone\n1\n",
        ),
        # "# " is output, not a root prompt.
        ("# systemctl restart app\n", "", "# systemctl restart app\n"),
        # A quote that never closes takes the rest of the block.
        ("$ echo 'open\nout\n$ ls\n", "echo 'open\nout\n$ ls\n", ""),
    ],
)
def test_split_console(text: str, commands: str, output: str) -> None:
    assert split_console(text) == (commands, output)


def test_console_continuation_runs_in_bash(tmp_path: Path) -> None:
    (tmp_path / "new.yaml").write_text("new\n")
    (tmp_path / "etc" / "app").mkdir(parents=True)
    config = tmp_path / "etc" / "app" / "config.yaml"
    config.write_text("old\n")
    step = all_steps(load_case("console_continuation"))[0]

    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", step.code],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": "/home/operator"},
        capture_output=True,
        text=True,
        timeout=10,
    )

    assert result.returncode == 0, result.stderr
    assert config.read_text() == "new\n"
    assert (tmp_path / "notes.txt").read_text() == "first $HOME\n\n"
    assert result.stdout == step.expected_output


def test_console_compound_commands_run_in_bash(tmp_path: Path) -> None:
    # Each step's expected output is what bash prints for its parsed code.
    steps = all_steps(load_case("console_compound"))

    outputs = [
        subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", step.code],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        for step in steps
    ]

    assert outputs == [step.expected_output for step in steps]


@pytest.mark.parametrize(
    ("code", "comments"),
    [
        ("#!/bin/sh\n# one\n", ("# one",)),
        ("echo\n#!not a shebang here\n", ("#!not a shebang here",)),
        ("  # indented\n", ("# indented",)),
        ("cat <<EOF\n# body\nEOF\n# after\n", ("# after",)),
        ("cat <<-'END'\n# body\n\tEND\n# after\n", ("# after",)),
        ('cat << "X"\n# body\nX\n# after\n', ("# after",)),
        ("cat <<A <<B\n# a\nA\n# b\nB\n# after\n", ("# after",)),
        ('grep x <<< "$v"\n# after\n', ("# after",)),
        ("echo $((1<<2))\n# after\n", ("# after",)),
    ],
)
def test_comment_lines(code: str, comments: tuple[str, ...]) -> None:
    assert comment_lines(code) == comments


# --- Slugs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Setup", "setup"),
        ("Run make via docs 🚀", "run-make-via-docs-"),
        ("Node Down / Unresponsive", "node-down--unresponsive"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("Ünïcödé Straße", "ünïcödé-straße"),
        ("What's new? (v2.0)", "whats-new-v20"),
        ("Step ½ – ²", "step---"),
        ("🚀", ""),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_unique_slugs_skip_real_heading() -> None:
    slugs = unique_slugs(["Check", "Check", "Check 1", "Check"])

    assert slugs == ["check", "check-2", "check-1", "check-3"]


def test_unique_slugs_repeated_real_suffix() -> None:
    assert unique_slugs(["A 1", "A", "A", "A 1"]) == ["a-1", "a", "a-2", "a-1-1"]


# --- Section lookup -------------------------------------------------------------


@pytest.fixture(scope="module")
def lookup_playbook() -> Playbook:
    return load_case("lookup")


def describe(section: Section) -> tuple[tuple[str, ...], int]:
    return section.path, section.start_line


INCIDENT = "Incident Response"


@pytest.mark.parametrize(
    ("query", "path", "line"),
    [
        # exact title
        ("Incident Response", (INCIDENT,), 1),
        ("Node Down / Unresponsive", (INCIDENT, "Node Down / Unresponsive"), 11),
        # case-insensitive title
        ("incident response", (INCIDENT,), 1),
        ("INCIDENT: STORAGE FULL", (INCIDENT, "Incident: Storage Full"), 3),
        ("  Deploy Setup  ", (INCIDENT, "Deploy Setup"), 23),
        # slug
        ("setup-1", (INCIDENT, "Setup"), 17),
        ("node-down--unresponsive", (INCIDENT, "Node Down / Unresponsive"), 11),
        # heading path, exact then case-insensitive
        ("Storage/Recovery", (INCIDENT, "Storage", "Recovery"), 9),
        (
            "incident: storage full/recovery",
            (INCIDENT, "Incident: Storage Full", "Recovery"),
            5,
        ),
        (
            "Incident Response / Storage / Recovery",
            (INCIDENT, "Storage", "Recovery"),
            9,
        ),
        ("/Incident Response/Storage", (INCIDENT, "Storage"), 7),
        (
            "Node Down / Unresponsive/Diagnose",
            (INCIDENT, "Node Down / Unresponsive", "Diagnose"),
            13,
        ),
        # substring
        ("Storage Full", (INCIDENT, "Incident: Storage Full"), 3),
        # substring
        ("ploy Set", (INCIDENT, "Deploy Setup"), 23),
        ("down / unresp", (INCIDENT, "Node Down / Unresponsive"), 11),
    ],
)
def test_find_section(
    lookup_playbook: Playbook, query: str, path: tuple[str, ...], line: int
) -> None:
    section = lookup_playbook.find_section(query)

    assert describe(section) == (path, line)


@pytest.mark.parametrize(
    ("query", "candidates"),
    [
        (
            "Recovery",
            (
                "Incident Response / Incident: Storage Full / Recovery"
                " (line 5, #recovery)",
                "Incident Response / Storage / Recovery (line 9, #recovery-1)",
            ),
        ),
        (
            "setup",
            (
                "Incident Response / Setup (line 15, #setup)",
                "Incident Response / Setup (line 17, #setup-1)",
            ),
        ),
        (
            "backup",
            (
                "Incident Response / Restore Backup (line 19, #restore-backup)",
                "Incident Response / Backup Check (line 21, #backup-check)",
            ),
        ),
        (
            "Stor",
            (
                "Incident Response / Incident: Storage Full"
                " (line 3, #incident-storage-full)",
                "Incident Response / Storage (line 7, #storage)",
                "Incident Response / Restore Backup (line 19, #restore-backup)",
            ),
        ),
    ],
)
def test_find_section_ambiguous(
    lookup_playbook: Playbook, query: str, candidates: tuple[str, ...]
) -> None:
    with pytest.raises(AmbiguousSection) as caught:
        lookup_playbook.find_section(query)

    assert caught.value.candidates == candidates
    assert caught.value.query == query


def test_find_section_ambiguous_message(lookup_playbook: Playbook) -> None:
    with pytest.raises(AmbiguousSection) as caught:
        lookup_playbook.find_section("Setup")

    assert "  Incident Response / Setup (line 15, #setup)\n" in str(caught.value)


def test_find_section_not_found_suggests(lookup_playbook: Playbook) -> None:
    with pytest.raises(SectionNotFound) as caught:
        lookup_playbook.find_section("Incidnt Respons")

    assert caught.value.suggestions[0] == INCIDENT
    assert len(caught.value.suggestions) <= 3


def test_find_section_no_suggestions(
    lookup_playbook: Playbook,
) -> None:
    with pytest.raises(SectionNotFound) as caught:
        lookup_playbook.find_section("zzzz")

    assert caught.value.suggestions == ()


def test_anchored_path_starts_at_top(
    lookup_playbook: Playbook,
) -> None:
    with pytest.raises(SectionNotFound):
        lookup_playbook.find_section("/Storage/Recovery")


def test_find_section_empty_query(lookup_playbook: Playbook) -> None:
    with pytest.raises(SectionNotFound):
        lookup_playbook.find_section("  ")


def test_ambiguous_message_lists_ten() -> None:
    candidates = [f"Setup (line {line})" for line in range(1, 14)]

    message = str(AmbiguousSection("Setup", candidates))

    assert "  Setup (line 10)\n  ... and 3 more\n" in message
    assert "(line 11)" not in message


def test_ambiguous_message_ten_without_more() -> None:
    candidates = [f"Setup (line {line})" for line in range(1, 11)]

    message = str(AmbiguousSection("Setup", candidates))

    assert "  Setup (line 10)\nPass a heading path" in message
    assert "more" not in message


# --- Heading paths in the incident-response playbook ----------------------------
# The playbook as its authors wrote it (tests/fixtures/original/): its line
# numbers do not move when a fix is made to playbooks/incident-response.md.


@pytest.fixture(scope="module")
def incident_playbook() -> Playbook:
    original = Path(__file__).parent / "fixtures" / "original" / "incident-response.md"
    return load_playbook(str(original))


PLAYBOOK_TITLE = "Incident Response Playbook"
STORAGE_FULL = "Incident: Storage Full"
NODE_DOWN = "Incident: Node Down / Unresponsive"


@pytest.mark.parametrize(
    ("query", "path", "line"),
    [
        # title suffix, then an exact child
        ("Storage Full/Recovery", (PLAYBOOK_TITLE, STORAGE_FULL, "Recovery"), 121),
        # title suffix and child in any case
        ("storage full/recovery", (PLAYBOOK_TITLE, STORAGE_FULL, "Recovery"), 121),
        # slug, then a child in any case
        (
            "incident-storage-full/recovery",
            (PLAYBOOK_TITLE, STORAGE_FULL, "Recovery"),
            121,
        ),
        # substring of a title that contains "/"
        ("Node Down/Diagnosis", (PLAYBOOK_TITLE, NODE_DOWN, "Diagnosis"), 71),
        # a title with "/" spans two segments
        ("Node Down / Unresponsive", (PLAYBOOK_TITLE, NODE_DOWN), 63),
        (
            "node down/unresponsive/recovery",
            (PLAYBOOK_TITLE, NODE_DOWN, "Recovery"),
            89,
        ),
        (
            "Incident: Node Down / Unresponsive/Symptoms",
            (PLAYBOOK_TITLE, NODE_DOWN, "Symptoms"),
            65,
        ),
        # a descendant when no child matches
        (
            "Server Not Starting/Database locked",
            (
                PLAYBOOK_TITLE,
                "Incident: Server Not Starting",
                "Common Causes and Fixes",
                "Database locked or corrupt",
            ),
            47,
        ),
        # "Incident" matches many sections, but one has a Mitigation child
        (
            "Incident/Mitigation",
            (PLAYBOOK_TITLE, "Incident: DDoS / Connection Flood", "Mitigation"),
            170,
        ),
        # a leading "/" starts at the top level
        (
            "/Incident Response Playbook/Storage Full/Recovery",
            (PLAYBOOK_TITLE, STORAGE_FULL, "Recovery"),
            121,
        ),
    ],
)
def test_find_section_by_path(
    incident_playbook: Playbook, query: str, path: tuple[str, ...], line: int
) -> None:
    section = incident_playbook.find_section(query)

    assert describe(section) == (path, line)


@pytest.mark.parametrize(
    ("query", "lines"),
    [
        # the last segment is a suffix of four children
        ("Key Compromise/Compromised", (187, 201, 215, 230)),
        # the first segment matches every incident, six of which have Symptoms
        ("Incident/Symptoms", (15, 65, 102, 152, 245, 285)),
    ],
)
def test_find_section_path_ambiguous(
    incident_playbook: Playbook, query: str, lines: tuple[int, ...]
) -> None:
    with pytest.raises(AmbiguousSection) as caught:
        incident_playbook.find_section(query)

    found = tuple(
        int(c.rsplit("(line ", 1)[1].split(",")[0]) for c in caught.value.candidates
    )
    assert found == lines


@pytest.mark.parametrize(
    "query", ["/Storage Full/Recovery", "Storage Full/Mitigation", "Incident/Nope"]
)
def test_find_section_path_not_found(incident_playbook: Playbook, query: str) -> None:
    with pytest.raises(SectionNotFound):
        incident_playbook.find_section(query)


@pytest.mark.parametrize(
    ("block", "line"),
    [
        ("```console\n$ sudo -i\n# systemctl restart nginx\n```\n", 3),
        ("```console\n$ ls\nalice@web1:~$ uptime\n```\n", 3),
        ("```console\n$ ls\n(venv) $ pip list\n```\n", 3),
        ("```console\n$ ls\n  $ indented\n```\n", 3),
        ("```console\nPS> Get-Service\n```\n", 2),
    ],
)
def test_console_other_prompts_warn(block: str, line: int) -> None:
    playbook = parse_playbook(f"# Title\n\n{block}", "p.md")
    lines = [w.line for w in playbook.warnings if "looks like a prompt" in w.message]
    assert lines == [line + 2]


def test_dollar_prompt_in_bash_block_warns() -> None:
    playbook = parse_playbook("# T\n\n```bash\n$ systemctl status app\n```\n", "p.md")
    messages = [w.message for w in playbook.warnings]
    assert any("'$ ' prompt" in m for m in messages)
    assert [w.line for w in playbook.warnings] == [4]


def test_space_before_language_is_trimmed() -> None:
    playbook = parse_playbook("# T\n\n``` bash\necho spaced\n```\n", "p.md")
    steps = playbook.root.all_steps()
    assert [s.code for s in steps] == ["echo spaced\n"]
    assert [s.language for s in steps] == ["bash"]


@pytest.mark.parametrize(
    ("markdown", "line", "phrase"),
    [
        (
            '# T\n\n??? note "x"\n    ```bash\n    echo hidden\n    ```\n',
            4,
            "continues the paragraph above",
        ),
        (
            "# T\n\n<details>\n<summary>More</summary>\n"
            "```bash\necho x\n```\n</details>\n",
            5,
            "inside an HTML block",
        ),
    ],
)
def test_swallowed_fence_warns(markdown: str, line: int, phrase: str) -> None:
    playbook = parse_playbook(markdown, "p.md")
    matching = [w.line for w in playbook.warnings if phrase in w.message]
    assert playbook.root.all_steps() == ()
    assert matching[0] == line


def test_fence_in_html_comment_is_silent() -> None:
    playbook = parse_playbook("# T\n\n<!--\n```bash\necho x\n```\n-->\n", "p.md")
    assert playbook.warnings == ()
