"""Step and section attributes acted on: parsing, runs, show, dry runs, lint."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook import lint
from runbook.cli import main
from runbook.commands import RunRequest, execute, plan_run
from runbook.errors import AttributeSyntaxError, PlaybookError
from runbook.plan import build_plan
from runbook.playbook import parse_playbook
from runbook.prompter import TerminalPrompter
from runbook.records import RunOptions
from runbook.runner import Runner
from runbook.session import BashSession
from runbook.targets import LocalTarget
from runbook.transcript import Transcript, read_transcript

VARIANTS = """\
---
deployments: [systemd, compose]
---
# Ops

## Logs

```bash {name=common}
echo common-step
```

```bash {name=journal when=systemd}
echo journal-step
```

```bash {name=compose-logs when=compose}
echo compose-step
```

```bash {name=either when="systemd,compose"}
echo either-step
```
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def write(tmp_path):
    def write_playbook(text: str, name: str = "p.md") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write_playbook


def records(path: Path) -> list[dict]:
    return list(read_transcript(path))


def steps_of(path: Path) -> dict[int, dict]:
    return {r["step"]: r for r in records(path) if r["type"] in ("step", "decision")}


def lines(output: str, text: str) -> bool:
    return re.search(rf"^{re.escape(text)}\r?$", output, re.M) is not None


# --- Parsing ---------------------------------------------------------------------


def test_output_block_attaches_to_step() -> None:
    playbook = parse_playbook(
        "# T\n\n```bash\necho hi\n```\n\n```output\nhi\n```\n\nProse.\n\n"
        "```text\nnot attached\n```\n"
    )
    step = playbook.root.all_steps()[0]
    section = next(playbook.sections())

    assert step.expected_output == "hi\n"
    assert step.output_line == 7
    assert step.output_regex is False
    assert [block.language for block in section.context] == ["text"]


def test_output_block_after_prose_is_context() -> None:
    playbook = parse_playbook("```bash\necho hi\n```\nSee:\n\n```output\nhi\n```\n")

    assert playbook.root.steps[0].expected_output is None
    assert playbook.root.context[0].language == "output"


def test_output_block_regex_attribute() -> None:
    playbook = parse_playbook("```bash\ndate\n```\n```output {regex}\n\\d+\n```\n")

    assert playbook.root.steps[0].output_regex is True


def test_output_block_unknown_attribute() -> None:
    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook("```bash\ntrue\n```\n\n```output {name=x}\n\n```\n", "p.md")

    assert str(caught.value) == (
        "p.md:5: invalid attribute 'name=x' in fence info string: unknown "
        "attribute 'name'; known attributes of an output block: regex"
    )


def test_output_block_invalid_regex_names_line() -> None:
    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook("```bash\ntrue\n```\n\n```output {regex}\nok\n(\n```\n", "p.md")

    assert str(caught.value).startswith(
        "p.md:7: line 2 of the output block is not a valid regular expression"
    )


def test_console_output_then_output_block_warns() -> None:
    playbook = parse_playbook("```console\n$ echo a\na\n```\n```output\na\n```\n")

    assert playbook.root.steps[0].expected_output == "a\n"
    assert playbook.warnings[0].line == 5
    assert "already shows its output" in playbook.warnings[0].message


def test_console_without_output_checks_nothing() -> None:
    playbook = parse_playbook("```console\n$ mkdir -p x\n```\n")

    assert playbook.root.steps[0].expected_output is None


def test_section_attributes_inherited() -> None:
    playbook = parse_playbook(
        "# A\n<!-- runbook: timeout=9 when=compose -->\n\n"
        "## B\n<!-- runbook: timeout=5 -->\n\n```bash {expect=any}\ntrue\n```\n\n"
        "## C\n\n```bash {timeout=1 when=systemd}\ntrue\n```\n"
    )
    first, second = playbook.root.all_steps()

    assert dict(first.attributes) == {
        "timeout": 5,
        "when": ("compose",),
        "expect": "any",
    }
    assert dict(first.own_attributes) == {"expect": "any"}
    assert dict(second.attributes) == {"timeout": 1, "when": ("systemd",)}
    assert first.name is None


def test_section_comment_rejects_name() -> None:
    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook("# A\n<!-- runbook: name=x -->\n\n```bash\ntrue\n```\n", "p.md")

    assert caught.value.line == 2
    assert str(caught.value).startswith("p.md:2: name cannot go in a section's")
    assert "as in bash {name=x}" in str(caught.value)


@pytest.mark.parametrize(
    ("info", "fix"),
    [
        ("output regex", "as in output {regex}"),
        ("text regex=true", "as in text {regex=true}"),
        ("bash confirm", "as in bash {confirm}"),
        ("sh name=check", "as in sh {name=check}"),
        ("bash timeout=5 interactive", "as in bash {timeout=5}"),
    ],
)
def test_attribute_outside_braces_rejected(info: str, fix: str) -> None:
    text = f"# A\n\n```bash\ntrue\n```\n\n```{info}\nx\n```\n"

    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook(text, "p.md")

    assert caught.value.line == 7
    assert "outside braces is not read as an attribute" in str(caught.value)
    assert fix in str(caught.value)


@pytest.mark.parametrize(
    "info", ["bash", 'bash title="a name=x"', "console", "text", "bash data-confirm"]
)
def test_other_words_after_language_allowed(info: str) -> None:
    text = f"# A\n\n```bash\ntrue\n```\n\n```{info}\nx\n```\n"

    assert len(parse_playbook(text, "p.md").root.all_steps()) >= 1


def test_empty_deployments_message() -> None:
    text = "---\ndeployments: []\n---\n# T\n\n```bash {when=x}\ntrue\n```\n"

    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook(text, "p.md")

    assert "no deployments are declared (deployments: [])" in str(caught.value)
    assert "declared deployments: ." not in str(caught.value)


def test_when_names_undeclared_deployment() -> None:
    text = (
        "---\ndeployments: [systemd, compose]\n---\n# T\n\n```bash {when=k8s}\nx\n```\n"
    )

    with pytest.raises(AttributeSyntaxError) as caught:
        parse_playbook(text, "p.md")

    assert str(caught.value) == (
        "p.md:6: when in the fence info string names 'k8s', which the front "
        "matter does not declare; declared deployments: systemd, compose. Fix "
        "the name, or add it to deployments: in the front matter"
    )


def test_section_when_checked_against_front_matter() -> None:
    text = "---\ndeployments: [systemd]\n---\n# T\n<!-- runbook: when=compose -->\n"

    with pytest.raises(AttributeSyntaxError, match=r"^p\.md:5: when in the runbook"):
        parse_playbook(text, "p.md")


def test_when_accepts_any_name_without_front_matter() -> None:
    playbook = parse_playbook("```bash {when=anything}\nx\n```\n")

    assert playbook.root.steps[0].deployments == ("anything",)


def test_invalid_deployments_front_matter() -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook("---\ntitle: x\ndeployments: systemd\n---\n# T\n", "p.md")

    assert str(caught.value).startswith(
        "p.md:3: front matter deployments must be a list of names"
    )
    assert "got 'systemd'" in str(caught.value)


def test_target_other_value_is_error() -> None:
    with pytest.raises(AttributeSyntaxError, match=r"^p\.md:3: .*not 'web-1'"):
        parse_playbook("# T\n\n```bash {target=web-1}\nx\n```\n", "p.md")


# --- Expected output in runs --------------------------------------------------------


def test_output_match_passes(cli, write, tmp_path):
    path = write(
        "```bash\necho hello; echo 'took 3 ms'; printf 'a\\nb\\n'\n```\n\n"
        "```output\nhello\ntook ... ms\n...\n```\n"
    )
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--yes", "--transcript", str(transcript))

    assert result.exit_code == 0, result.output
    assert steps_of(transcript)[1]["output_matched"] is True


def test_output_mismatch_fails_yes_run(cli, write, tmp_path):
    path = write(
        "```bash\necho actual\n```\n\n```output\nexpected\n```\n\n"
        "```bash\necho later\n```\n"
    )
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--yes", "--transcript", str(transcript))

    assert result.exit_code == 1
    assert "Step 1 failed: 0, output did not match" in result.output
    assert lines(result.output, "-expected")
    assert lines(result.output, "+actual")
    assert not lines(result.output, "later")
    step = steps_of(transcript)[1]
    assert step["output_matched"] is False
    assert step["output_diff"].splitlines()[:2] == [
        f"--- expected ({path}:5)",
        "+++ output of step 1",
    ]
    assert "-expected\n+actual\n" in step["output_diff"]


def test_output_not_checked_after_failed_status(cli, write, tmp_path):
    path = write("```bash\necho x; false\n```\n```output\ny\n```\n")
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--yes", "--transcript", str(transcript))

    assert result.exit_code == 1
    assert "Step 1 failed: 1 (" in result.output
    assert "output_matched" not in steps_of(transcript)[1]


def test_regex_output_block(cli, write):
    path = write(
        "```bash\necho 'pid 4242 up'\n```\n```output {regex}\npid \\d+ up\n```\n"
    )

    assert cli("run", path, "--yes").exit_code == 0


def test_console_expected_output_checked(cli, write):
    good = write("```console\n$ echo one\none\n```\n", "good.md")
    bad = write("```console\n$ echo one\ntwo\n```\n", "bad.md")

    assert cli("run", good, "--yes").exit_code == 0
    assert cli("run", bad, "--yes").exit_code == 1


def test_output_mismatch_masks_secrets(cli, write, tmp_path, monkeypatch):
    secret = "s3cret-value-0123456789"
    monkeypatch.setenv("QPC_AUTH_TOKEN", secret)
    path = write('```bash\necho "token $QPC_AUTH_TOKEN"\n```\n```output\nno\n```\n')
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--yes", "--transcript", str(transcript))

    assert result.exit_code == 1
    assert lines(result.output, "+token ***")
    assert secret not in result.output
    assert secret not in transcript.read_text()


def test_output_mismatch_offers_retry_and_edit(cli, write, tmp_path):
    path = write("```bash\necho actual\n```\n```output\nexpected\n```\n")
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--transcript", str(transcript), input="r\nr\ns\n")

    assert result.exit_code == 1
    assert result.output.count("[r]etry, [s]kip, [e]dit, [q]uit?") == 2
    attempts = [r for r in records(transcript) if r["type"] == "step"]
    assert [r["output_matched"] for r in attempts] == [False, False]


# --- expect ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "status", "exit_code"),
    [
        ("expect=any", 7, 0),
        ('expect="0,3"', 3, 0),
        ('expect="0,3"', 0, 0),
        ('expect="0,3"', 1, 1),
        ("exit=2", 2, 0),
    ],
)
def test_expect_forms(cli, write, attribute, status, exit_code):
    path = write(f"```bash {{{attribute}}}\n(exit {status})\n```\n")

    result = cli("run", path, "--yes")

    assert result.exit_code == exit_code, result.output


def test_expect_list_in_failure_text(cli, write):
    path = write('```bash {"expect": [0, 3]}\n(exit 1)\n```\n')

    result = cli("run", path, "--yes")

    assert "Step 1 failed: 1 (expected 0 or 3)" in result.output


def test_expect_any_still_fails_on_timeout(cli, write):
    path = write("```bash {expect=any timeout=0.3}\nsleep 5\n```\n")

    assert cli("run", path, "--yes").exit_code == 1


# --- skip-test and interactive ------------------------------------------------------


def test_skip_test_only_in_test_mode(write, tmp_path):
    path = write(
        "# T\n\n```bash {skip-test='needs a cluster'}\necho ran-it\n```\n\n"
        '## Sub\n<!-- runbook: skip-test="manual section" -->\n\n'
        "```bash\necho sub-ran\n```\n"
    )
    outputs = {}
    for mode in (False, True):
        transcript = tmp_path / f"{mode}.jsonl"
        request = RunRequest(
            playbook=path, section="T", assume_yes=True, testing=mode,
            transcript=str(transcript),
        )  # fmt: skip
        out = io.StringIO()
        result = execute(request, plan_run(request), LocalTarget(), out)
        assert result.exit_code == 0
        outputs[mode] = (out.getvalue(), steps_of(transcript))

    normal_text, normal_steps = outputs[False]
    test_text, test_steps = outputs[True]
    assert lines(normal_text, "ran-it")
    assert lines(normal_text, "sub-ran")
    assert "Step 1 skipped: skip-test: needs a cluster" in test_text
    assert "Step 2 skipped: skip-test: manual section" in test_text
    assert not lines(test_text, "ran-it")
    assert [r["type"] for r in normal_steps.values()] == ["step", "step"]
    assert [r["decision"] for r in test_steps.values()] == ["skip", "skip"]
    assert test_steps[1]["reason"] == "skip-test: needs a cluster"


def test_skip_test_runs_in_normal_run(cli, write):
    path = write("```bash {skip-test='slow'}\necho ran-it\n```\n")

    result = cli("run", path, "--yes")

    assert result.exit_code == 0
    assert lines(result.output, "ran-it")


def test_interactive_skipped_under_yes(cli, write, tmp_path):
    path = write(
        "```bash {interactive}\necho by-hand\n```\n\n```bash\necho after\n```\n"
    )
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "--yes", "--transcript", str(transcript))

    assert result.exit_code == 0
    assert "Step 1 skipped: interactive: run it by hand" in result.output
    assert not lines(result.output, "by-hand")
    assert lines(result.output, "after")
    assert steps_of(transcript)[1]["reason"] == "interactive: run it by hand"


def test_interactive_step_reads_terminal(tmp_path):
    """In an interactive run on a terminal, the step reads what the operator types."""
    pexpect = pytest.importorskip("pexpect")
    playbook = tmp_path / "p.md"
    playbook.write_text('```bash {interactive}\nread -r A; echo "got [$A]"\n```\n')
    child = pexpect.spawn(
        "runbook",
        ["run", str(playbook), "--transcript", str(tmp_path / "t.jsonl")],
        cwd=str(tmp_path),
        env={"PATH": _path(), "HOME": str(tmp_path), "TERM": "dumb", "NO_COLOR": "1"},
        timeout=20,
    )
    try:
        child.expect(r"\[r\]un")
        child.sendline("r")
        time.sleep(0.5)  # the step starts and waits in read
        child.sendline("typed-by-hand")
        child.expect(r"got \[typed-by-hand\]")
        child.expect(pexpect.EOF)
    finally:
        child.close()

    assert child.exitstatus == 0


def _path() -> str:
    import os

    return os.environ["PATH"]


# --- Deployment variants ------------------------------------------------------------


def test_deployment_runs_its_variant(cli, write, tmp_path):
    path = write(VARIANTS)
    transcript = tmp_path / "t.jsonl"

    result = cli(
        "run", path, "-s", "Logs", "--yes", "--deployment", "compose",
        "--transcript", str(transcript),
    )  # fmt: skip

    assert result.exit_code == 0
    assert lines(result.output, "common-step")
    assert lines(result.output, "compose-step")
    assert lines(result.output, "either-step")
    assert not lines(result.output, "journal-step")
    assert "Step 2 skipped: for systemd; this run is compose" in result.output
    assert "variant: compose (when=compose)" in result.output
    start = records(transcript)[0]
    assert start["deployment"] == "compose"
    assert steps_of(transcript)[2]["reason"] == "for systemd; this run is compose"


def test_yes_without_deployment_is_rejected(cli, write, tmp_path):
    path = write(VARIANTS)
    transcript = tmp_path / "t.jsonl"

    result = cli("run", path, "-s", "Logs", "--yes", "--transcript", str(transcript))

    assert result.exit_code == 2
    assert f"step 2 (journal, {path}:12) runs only for systemd" in result.output
    assert "pass --deployment NAME" in result.output
    assert "(one of: systemd, compose)" in result.output
    assert not transcript.exists()


def test_dry_run_without_deployment_is_rejected(cli, write):
    result = cli("run", write(VARIANTS), "-s", "Logs", "--dry-run")

    assert result.exit_code == 2
    assert "--deployment" in result.output


def test_dry_run_marks_other_variants(cli, write):
    result = cli(
        "run", write(VARIANTS), "-s", "Logs", "--dry-run", "--deployment", "systemd"
    )

    assert result.exit_code == 0
    assert "3 of 4 steps" in result.output
    assert "  skipped: for compose; this run is systemd" in result.output


def test_unknown_deployment_is_rejected(cli, write):
    result = cli("run", write(VARIANTS), "-s", "Logs", "--yes", "--deployment", "k8s")

    assert result.exit_code == 2
    assert "--deployment 'k8s' is not a deployment of" in result.output
    assert "declares: systemd, compose" in result.output


def test_interactive_run_asks_deployment_once(cli, write, tmp_path):
    path = write(VARIANTS)
    transcript = tmp_path / "t.jsonl"

    result = cli(
        "run", path, "-s", "Logs", "--transcript", str(transcript),
        input="k8s\nsystemd\na\n",
    )  # fmt: skip

    assert result.exit_code == 0
    assert result.output.count("Which deployment is this ([q]uit)?") == 2
    assert "Invalid deployment 'k8s'" in result.output
    assert lines(result.output, "journal-step")
    assert not lines(result.output, "compose-step")
    chosen = [r for r in records(transcript) if r["type"] == "deployment"]
    assert [r["deployment"] for r in chosen] == ["systemd"]


def test_deployment_answer_in_any_case(cli, write, tmp_path):
    transcript = tmp_path / "t.jsonl"

    result = cli(
        "run", write(VARIANTS), "-s", "Logs", "--transcript", str(transcript),
        input="SYSTEMD\na\n",
    )  # fmt: skip

    assert result.exit_code == 0
    assert "Deployment: systemd;" in result.output
    chosen = [r for r in records(transcript) if r["type"] == "deployment"]
    assert [r["deployment"] for r in chosen] == ["systemd"]


def test_deployment_prompt_quits(cli, write, tmp_path):
    transcript = tmp_path / "t.jsonl"

    result = cli(
        "run", write(VARIANTS), "-s", "Logs", "--transcript", str(transcript),
        input="k8s\nq\n",
    )  # fmt: skip

    assert result.exit_code == 0
    assert "type one of: systemd, compose, or q to quit" in result.output
    assert "Stopped: operator quit at the deployment prompt" in result.output
    found = records(transcript)
    decisions = [r["decision"] for r in found if r["type"] == "decision"]
    assert decisions == ["not run"] * 4
    assert found[-1]["type"] == "end"


def test_declined_confirm_has_reason(cli, write, tmp_path):
    transcript = tmp_path / "t.jsonl"
    path = write("# T\n\n```bash {name=wipe confirm}\necho wiped\n```\n")

    result = cli(
        "run", path, "-s", "T", "--transcript", str(transcript), input="r\nno\n"
    )

    assert result.exit_code == 0
    skipped = [r for r in records(transcript) if r["type"] == "decision"]
    assert skipped[0]["decision"] == "skip"
    assert skipped[0]["reason"] == "operator did not confirm"


def test_no_question_without_variants(cli, write):
    path = write("# T\n\n```bash\necho plain\n```\n")

    result = cli("run", path, input="r\n")

    assert "Which deployment" not in result.output


def test_show_marks_other_variants(cli, write):
    result = cli("show", write(VARIANTS), "-s", "Logs", "--deployment", "systemd")

    assert result.exit_code == 0
    assert "deployment: systemd" in result.output
    assert result.output.count("skipped: for compose; this run is systemd") == 1


def test_show_json_includes_attributes(cli, write):
    import json

    result = cli(
        "show", write(VARIANTS), "-s", "Logs", "--deployment", "compose",
        "--format", "json",
    )  # fmt: skip
    data = json.loads(result.output)

    assert data["deployment"] == "compose"
    assert data["steps"][1]["attributes"] == {"name": "journal", "when": ["systemd"]}
    assert data["steps"][1]["skipped"] == "for systemd; this run is compose"
    assert data["steps"][2]["skipped"] is None


def test_skipped_variant_needs_no_values(cli, write):
    path = write(
        "```bash {when=compose}\necho <compose-file>\n```\n\n"
        "```bash {when=systemd confirm}\necho systemd\n```\n"
    )

    result = cli("run", path, "--yes", "--deployment", "systemd", "--allow-destructive")
    refused = cli("run", path, "--yes", "--deployment", "compose")

    assert result.exit_code == 0, result.output
    assert refused.exit_code == 2
    assert "missing values for: compose-file" in refused.output


def test_library_caller_sets_deployment(write, tmp_path):
    """RunOptions.deployment is how a caller such as the sandbox picks variants."""
    plan = build_plan(parse_playbook(VARIANTS, write(VARIANTS)), "Logs")
    transcript = Transcript(tmp_path / "t.jsonl")
    transcript.open()
    out = io.StringIO()
    options = RunOptions(assume_yes=True, deployment="systemd")
    runner = Runner(plan, TerminalPrompter(4, True, out), transcript, options)

    result = runner.run()
    transcript.close()

    assert result.exit_code == 0
    assert [r.decision for r in result.records] == ["run", "run", "skip", "run"]
    assert result.records[2].reason == "for compose; this run is systemd"


# --- target=local -------------------------------------------------------------------


def test_local_steps_use_own_shell(write, tmp_path):
    """Steps marked target=local share one shell apart from the run's own."""
    remote_dir, local_dir = tmp_path / "remote", tmp_path / "local"
    remote_dir.mkdir()
    local_dir.mkdir()
    path = write(
        "# T\n\n```bash\nexport WHERE=run-shell; pwd\n```\n\n"
        '```bash {target=local}\necho "local sees [${WHERE:-}] $VALUE"; pwd; '
        "export LOCAL=1\n```\n\n"
        '```bash\necho "run sees [${LOCAL:-}] $WHERE"\n```\n'
    )
    plan = build_plan(parse_playbook(Path(path).read_text(), path), None)
    plan.values["VALUE"] = "exported-to-both"
    transcript = Transcript(tmp_path / "t.jsonl")
    transcript.open()
    out = io.StringIO()
    runner = Runner(
        plan,
        TerminalPrompter(3, True, out),
        transcript,
        RunOptions(assume_yes=True, target="docker:x"),
        lambda: BashSession(cwd=str(remote_dir)),
        local_session_factory=lambda: BashSession(cwd=str(local_dir)),
    )

    result = runner.run()
    transcript.close()

    text = out.getvalue()
    assert result.exit_code == 0, text
    assert lines(text, str(remote_dir))
    assert lines(text, "local sees [] exported-to-both")
    assert lines(text, str(local_dir))
    assert lines(text, "run sees [] run-shell")
    assert "runs on: this machine (target=local)" in text
    assert steps_of(tmp_path / "t.jsonl")[2]["target"] == "local"


@pytest.mark.docker
def test_local_step_runs_outside_container(cli, write, tmp_path, docker_engine):
    container = subprocess.run(
        ["docker", "run", "-d", "--label", "runbook.dev=1", "debian:trixie-slim",
         "sleep", "infinity"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    marker = tmp_path / "made-here"
    try:
        path = write(
            "```bash\ntest -e /.dockerenv && echo in-container\n```\n\n"
            f'```bash {{target=local}}\ntouch {marker}; echo "on $(hostname)"\n```\n'
        )
        result = cli("run", path, "--yes", "--target", f"docker:{container}")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)

    assert result.exit_code == 0, result.output
    assert lines(result.output, "in-container")
    assert lines(result.output, f"on {socket.gethostname()}")
    assert marker.exists()


# --- lint --------------------------------------------------------------------------


def test_lint_orphan_output_block(write):
    path = write("# T\n\n```bash\ntrue\n```\n\nProse.\n\n```output\nx\n```\n")

    findings = lint.lint(path, use_shellcheck=False)

    assert [(f.rule, f.line) for f in findings] == [("RB010", 9)]


def test_lint_when_without_declared_deployments(write):
    path = write("# T\n\n```bash {when=compose}\ntrue\n```\n")

    findings = lint.lint(path, use_shellcheck=False)

    assert [(f.rule, f.severity, f.line) for f in findings] == [("RB011", "info", 3)]
    assert "deployments: [compose]" in findings[0].message


def test_lint_inherited_confirm_counts(write):
    path = write("# T\n<!-- runbook: confirm -->\n\n```bash\nrm -rf /tmp/x\n```\n")

    assert lint.lint(path, use_shellcheck=False) == []
