"""The CLI through click's test runner: output, exit status, transcripts."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli import main
from runbook.transcript import read_transcript

FIXTURES = Path(__file__).parent / "fixtures" / "playbooks"
DEMO = str(FIXTURES / "demo.md")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke runbook in a scratch directory with a transcript path per call."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("QPC_AUTH_TOKEN", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def records(path: Path) -> list[dict]:
    return list(read_transcript(path))


# --- list and show -----------------------------------------------------------


def test_list_shows_tree_and_counts(cli):
    result = cli("list", DEMO)
    assert result.exit_code == 0
    assert re.search(r"^  Happy Path +3 steps +#happy-path", result.output, re.M)
    assert re.search(r"^    Nested Check +1 step +#nested-check", result.output, re.M)
    assert re.search(r"^  Prose Only +- +#prose-only", result.output, re.M)


def test_list_warning_names_file_and_line(cli, tmp_path):
    playbook = tmp_path / "open.md"
    playbook.write_text("# P\n\n```bash\necho open\n")

    result = cli("list", str(playbook))

    assert result.exit_code == 0
    assert result.output.splitlines()[-1].startswith(
        f"{playbook}:3: warning: code fence is not closed"
    )


def test_list_json_is_nested(cli):
    result = cli("list", DEMO, "--format", "json")
    data = json.loads(result.output)
    top = data["sections"][0]
    happy = top["children"][0]
    assert result.exit_code == 0
    assert top["title"] == "Demo"
    assert happy["title"] == "Happy Path"
    assert happy["steps"] == 3
    assert happy["own_steps"] == 2
    assert happy["children"][0]["slug"] == "nested-check"


def test_show_numbers_steps(cli):
    result = cli("show", DEMO, "--section", "Happy Path")
    assert result.exit_code == 0
    assert "Step 1/3  Demo › Happy Path" in result.output
    assert "Make a directory and remember a colour." in result.output
    assert "    export COLOR=red" in result.output
    assert "Step 3/3  Demo › Happy Path › Nested Check" in result.output


def test_show_unknown_section_suggests(cli):
    result = cli("show", DEMO, "--section", "Hapy Path")
    assert result.exit_code == 2
    assert "section not found: 'Hapy Path'" in result.output
    assert "'Happy Path'" in result.output


def test_missing_playbook_file(cli):
    result = cli("list", "nope.md")
    assert result.exit_code == 2
    assert "nope.md" in result.output
    assert "not found" in result.output


def test_non_utf8_playbook(cli):
    result = cli("list", str(FIXTURES / "latin1.md"))
    assert result.exit_code == 2
    assert "latin1.md" in result.output
    assert "UTF-8" in result.output


def test_playbook_without_steps(cli):
    result = cli("run", str(FIXTURES / "no-steps.md"), "--section", "Nothing", "--yes")
    assert result.exit_code == 2
    assert "has no runnable steps" in result.output


def test_section_without_steps(cli):
    result = cli("run", DEMO, "--section", "Prose Only", "--yes")
    assert result.exit_code == 2
    assert "'Demo / Prose Only'" in result.output
    assert "has no runnable steps" in result.output


# --- run --yes ---------------------------------------------------------------


def test_yes_runs_all_and_keeps_state(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Happy Path", "--yes", "--transcript", str(transcript)
    )
    assert result.exit_code == 0
    assert "in work with red" in result.output
    assert "nested-ok" in result.output
    assert re.search(r"^3 +run +0 ", result.output, re.M)
    kinds = [r["type"] for r in records(transcript)]
    assert kinds == ["start", *["started", "step"] * 3, "end"]


def test_yes_stops_at_first_failure(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Failing Step", "-y", "--transcript", str(transcript)
    )
    assert result.exit_code == 1
    assert "before-failure" in result.output
    assert not re.search(r"^after-failure$", result.output, re.M)
    assert re.search(r"^2 +run +1 ", result.output, re.M)
    assert re.search(r"^3 +not run +- ", result.output, re.M)
    end = records(transcript)[-1]
    assert end["type"] == "end"
    assert end["exit_code"] == 1


def test_keep_going_runs_past_failure(cli):
    result = cli("run", DEMO, "-s", "Failing Step", "--yes", "--keep-going")
    assert result.exit_code == 1
    assert "after-failure" in result.output


def test_keep_going_needs_yes(cli):
    result = cli("run", DEMO, "-s", "Failing Step", "--keep-going")
    assert result.exit_code == 2
    assert "--keep-going only applies with --yes" in result.output


def test_yes_stdin_is_empty(cli):
    result = cli("run", DEMO, "-s", "Reads Stdin", "--yes")
    assert result.exit_code == 0
    # read fails at end of input, so its status is 1.
    assert "got [] status 1" in result.output


def test_step_and_from_select(cli):
    only_second = cli("run", DEMO, "-s", "Failing Step", "--yes", "--step", "3")
    from_third = cli("run", DEMO, "-s", "Happy Path", "--yes", "--from", "3")
    assert only_second.exit_code == 0
    assert "after-failure" in only_second.output
    assert "before-failure" not in only_second.output
    assert from_third.exit_code == 0
    assert "nested-ok" in from_third.output
    assert "in work" not in from_third.output


def test_step_out_of_range(cli):
    result = cli("run", DEMO, "-s", "Happy Path", "--yes", "--step", "9")
    assert result.exit_code == 2
    assert "step 9 does not exist" in result.output
    assert "steps 1 to 3" in result.output


def test_timeout_fails_step_and_run_goes_on(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Slow Step", "--yes", "--keep-going",
        "--timeout", "0.5", "--transcript", str(transcript),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "timed out" in result.output
    assert "after-slow" in result.output
    step = records(transcript)[2]
    assert step["timed_out"] is True
    assert step["output"].startswith("slow-started")


def test_exit_ends_session_and_later_steps_not_run(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Ends Shell", "--yes", "--transcript", str(transcript)
    )
    assert result.exit_code == 1
    assert "shell exited (3)" in result.output
    assert "after exit [1]" not in result.output
    assert "after exit [unset]" not in result.output
    assert re.search(r"^3 +not run", result.output, re.M)
    assert "the shell exited with status 3 during step 2" in result.output


# --- values ----------------------------------------------------------------


def test_yes_lists_missing_values_before_running(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Uses Placeholder", "--yes", "--transcript", str(transcript)
    )
    assert result.exit_code == 2
    assert "missing values for: server-ip" in result.output
    assert "demo.md:" in result.output
    assert "--var NAME=VALUE" in result.output
    assert not transcript.exists()


def test_placeholder_value_is_quoted(cli):
    result = cli(
        "run", DEMO, "-s", "Uses Placeholder", "--yes", "--var", "server-ip=a b;$(x)"
    )
    assert result.exit_code == 0
    assert "target is a b;$(x)" in result.output


def test_dry_run_substitutes_and_runs_nothing(cli, tmp_path):
    result = cli("run", DEMO, "-s", "Happy Path", "--dry-run")
    assert result.exit_code == 0
    assert "Dry run: nothing is executed" in result.output
    assert "    export COLOR=red" in result.output
    assert not (tmp_path / "work").exists()


def test_dry_run_shows_placeholder_value(cli):
    result = cli(
        "run", DEMO, "-s", "Uses Placeholder", "-n", "--var", "server-ip=10.1.2.3"
    )
    assert result.exit_code == 0
    assert 'echo "target is 10.1.2.3"' in result.output


def test_dry_run_lists_missing_values(cli):
    result = cli("run", DEMO, "-s", "Uses Placeholder", "--dry-run")
    assert result.exit_code == 0
    assert "Missing values" in result.output
    assert "<server-ip> (placeholder) first used in step 1" in result.output


def test_malformed_var_option(cli):
    result = cli("run", DEMO, "-s", "Happy Path", "--yes", "--var", "novalue")
    assert result.exit_code == 2
    assert "novalue" in result.output


def test_env_file_supplies_variable(cli, tmp_path):
    env_file = tmp_path / "values.env"
    env_file.write_text("QPC_AUTH_TOKEN=abcdefghijklmnop\n")
    result = cli(
        "run", DEMO, "-s", "Uses Variable", "--yes", "--env-file", str(env_file)
    )
    assert result.exit_code == 0
    assert "token length 16" in result.output


def test_missing_env_file(cli):
    result = cli("run", DEMO, "-s", "Uses Variable", "--yes", "--env-file", "none.env")
    assert result.exit_code == 2
    assert "none.env" in result.output


def test_secret_never_printed_or_recorded(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    secret = "s3cr3t-t0ken-value"
    result = cli(
        "run", DEMO, "-s", "Uses Variable", "--yes",
        "--var", f"QPC_AUTH_TOKEN={secret}", "--transcript", str(transcript),
    )  # fmt: skip
    assert result.exit_code == 0
    assert "token length 18" in result.output
    assert "token is ***" in result.output
    assert secret not in result.output
    assert secret not in transcript.read_text()


# --- interactive answers -----------------------------------------------------


def test_interactive_skip_run_quit(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Happy Path", "--transcript", str(transcript),
        input="s\nr\n\nq\n",
    )  # fmt: skip
    # Step 1 would have set COLOR; skipped, step 2 asks for it (empty: unset).
    assert result.exit_code == 0
    assert "Value for $COLOR" in result.output
    assert re.search(r"^in \S+ with $", result.output, re.M)
    assert not re.search(r"^nested-ok$", result.output, re.M)
    decisions = [(r["type"], r.get("decision")) for r in records(transcript)[1:-1]]
    assert decisions == [
        ("decision", "skip"),
        ("started", None),
        ("step", None),
        ("decision", "quit"),
    ]


def test_interactive_invalid_answer_asks_again(cli):
    result = cli("run", DEMO, "-s", "Nested Check", input="x\nr\n")
    assert result.exit_code == 0
    assert "Invalid answer 'x'" in result.output
    assert "nested-ok" in result.output


def test_interactive_run_all(cli):
    result = cli("run", DEMO, "-s", "Happy Path", input="a\n")
    assert result.exit_code == 0
    assert result.output.count("[r]un, [s]kip") == 1
    assert "nested-ok" in result.output


def test_interactive_failure_retry_then_skip(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Failing Step", "--transcript", str(transcript),
        input="r\nr\nr\ns\nr\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.count("failing\n") == 2
    assert "after-failure\n" in result.output
    steps = [r for r in records(transcript) if r["type"] == "step"]
    assert [s["exit_status"] for s in steps] == [0, 1, 1, 0]


def test_interactive_asks_placeholder_once(cli):
    result = cli("run", DEMO, "-s", "Uses Placeholder", input="r\n10.9.8.7\n")
    assert result.exit_code == 0
    assert "Value for <server-ip>" in result.output
    assert "target is 10.9.8.7" in result.output


def test_interactive_end_of_input_quits(cli):
    result = cli("run", DEMO, "-s", "Happy Path", input="r\n")
    assert result.exit_code == 130
    assert re.search(r"^2 +not run", result.output, re.M)


def test_interactive_new_shell_after_exit(cli):
    result = cli("run", DEMO, "-s", "Ends Shell", input="r\nr\nn\nr\n")
    assert result.exit_code == 1
    assert "The shell exited (status 3)" in result.output
    assert "after exit [unset]" in result.output


def test_edit_runs_edited_code(cli, tmp_path, monkeypatch):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/nested-ok/edited-ok/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Nested Check", "--transcript", str(transcript), input="e\n"
    )
    step = records(transcript)[2]
    assert result.exit_code == 0
    assert "edited-ok" in result.output
    assert step["edited"] is True
    assert "edited-ok" in step["command"]


# --- help and docs -----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["list", "show", "run", "test", "lint", "sandbox build", "sandbox clean"],
)
def test_every_command_has_help_and_docs(cli, command):
    result = cli(*command.split(), "--help")
    readme = (REPO / "README.md").read_text()
    assert result.exit_code == 0
    assert "Example: runbook" in result.output
    assert f"runbook {command}" in readme


def test_readme_test_command_matches_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"^\./scripts/setup && (python3 -m pytest.*)$", readme, re.M)
    assert commands, "README names no test command"
    assert commands[0] in ci.splitlines()


def test_readme_main_job_uses_sandbox():
    readme = (REPO / "README.md").read_text()
    first = re.findall(r"^\./scripts/setup && (runbook .*)$", readme, re.M)[0]
    assert first == (
        'runbook run playbooks/incident-response.md --section "Storage Full" '
        "--target sandbox"
    )
    scenario = REPO / "fixtures" / "scenarios" / "storage-full.yaml"
    assert "section: Storage Full" in scenario.read_text()


# --- hard cases through the whole runner -------------------------------------


def test_unclosed_heredoc_not_sent(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Broken Heredoc", "--yes", "--keep-going",
        "--transcript", str(transcript),
    )  # fmt: skip
    step = records(transcript)[1]
    assert result.exit_code == 1
    assert step["type"] == "step"
    assert "incomplete input" in result.output
    assert "next-step-ran" in result.output
    assert step["exit_status"] is None
    assert "never closed" in step["output"]
    assert not (tmp_path / "out.txt").exists()


def test_raw_output_bytes_in_transcript(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Raw Output", "--yes", "--transcript", str(transcript)
    )
    step = records(transcript)[2]
    raw = base64.b64decode(step["output_base64"])
    assert result.exit_code == 0
    # The terminal turns the step's \n into \r\n, so \r\n arrives as \r\r\n.
    assert raw == b"bad \xff byte\r\r\n\x1b[32mgreen\x1b[0m no newline"
    assert step["output"].startswith("bad \ufffd byte")


def test_set_e_then_false_ends_run(cli, tmp_path):
    result = cli("run", DEMO, "-s", "Set E", "--yes")
    assert result.exit_code == 1
    assert "shell exited (1)" in result.output
    assert re.search(r"^3 +not run", result.output, re.M)
    assert not re.search(r"^unreachable$", result.output, re.M)


def test_section_completion_offers_titles():
    env = dict(
        os.environ,
        _RUNBOOK_COMPLETE="bash_complete",
        COMP_WORDS=f"runbook run {DEMO} --section fail",
        COMP_CWORD="4",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "runbook"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.stdout.splitlines() == [
        "plain,failing-step",
        "plain,expected-failure",
    ]


# --- step attributes ---------------------------------------------------------


def test_expect_attribute_sets_success_status(cli):
    result = cli("run", DEMO, "-s", "Expected Failure", "--yes")
    assert result.exit_code == 0
    assert "Step 1 succeeded" in result.output


def test_confirm_step_refused_under_yes(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Destructive", "--yes", "--transcript", str(transcript)
    )
    assert result.exit_code == 2
    assert "steps marked confirm cannot run unattended: 1 (wipe" in result.output
    assert "--allow-destructive" in result.output
    assert not transcript.exists()


def test_confirm_step_runs_with_consent(cli):
    result = cli("run", DEMO, "-s", "Destructive", "--yes", "--allow-destructive")
    assert result.exit_code == 0
    assert re.search(r"^wiped$", result.output, re.M)


def test_confirm_step_needs_typed_name(cli):
    typed = cli("run", DEMO, "-s", "Destructive", input="r\nwipe\n")
    wrong = cli("run", DEMO, "-s", "Destructive", input="r\nyes\n")
    assert typed.exit_code == 0
    assert re.search(r"^wiped$", typed.output, re.M)
    assert wrong.exit_code == 0
    assert "Not confirmed; step 1 skipped." in wrong.output
    assert not re.search(r"^wiped$", wrong.output, re.M)


def test_allow_destructive_needs_yes(cli):
    result = cli("run", DEMO, "-s", "Destructive", "--allow-destructive")
    assert result.exit_code == 2
    assert "--allow-destructive only applies with --yes" in result.output


def test_run_all_still_shows_each_step(cli):
    result = cli("run", DEMO, "-s", "Happy Path", input="a\n")
    assert result.exit_code == 0
    assert "Step 2/3  Demo › Happy Path" in result.output
    assert "Step 3/3  Demo › Happy Path › Nested Check" in result.output


def test_secret_placeholder_masked_in_listing(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", DEMO, "-s", "Secret Placeholder", "--yes",
        "--var", "db-password=pw-secret-0", "--transcript", str(transcript),
    )  # fmt: skip
    assert result.exit_code == 0
    assert "pw-secret-0" not in result.output
    assert 'echo "connecting with ***"' in result.output
    assert "pw-secret-0" not in transcript.read_text()


def test_substitution_alone_is_not_an_edit(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    cli(
        "run", DEMO, "-s", "Uses Placeholder", "--yes", "--var", "server-ip=h1",
        "--transcript", str(transcript),
    )  # fmt: skip
    step = records(transcript)[2]
    assert step["command"] == 'echo "target is h1"\n'
    assert step["edited"] is False


def test_timeout_must_be_finite(cli):
    result = cli("run", DEMO, "-s", "Happy Path", "--yes", "--timeout", "nan")
    assert result.exit_code == 2
    assert "nan is not a number of seconds" in result.output


def test_transcript_in_missing_directory(cli, tmp_path):
    target = tmp_path / "absent" / "t.jsonl"
    result = cli("run", DEMO, "-s", "Happy Path", "--yes", "--transcript", str(target))
    assert result.exit_code == 2
    assert "cannot write transcript" in result.output
    assert not target.parent.exists()


def test_transcript_private_to_owner(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    cli("run", DEMO, "-s", "Nested Check", "--yes", "--transcript", str(transcript))
    assert stat.S_IMODE(transcript.stat().st_mode) == 0o600


def test_show_lists_step_attributes(cli):
    result = cli("show", DEMO, "--section", "Destructive")
    assert result.exit_code == 0
    assert "  name: wipe" in result.output
    assert "  attributes: confirm" in result.output


def test_sigterm_records_step_and_end(tmp_path):
    transcript = tmp_path / "t.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "runbook", "run", DEMO, "-s", "Killed Midway",
         "--yes", "--transcript", str(transcript)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: '"output": "second-started' in _text(transcript), 20)
        process.terminate()
        assert process.wait(timeout=20) == 143
    finally:
        process.kill()
    found = records(transcript)
    step = [r for r in found if r["type"] == "step"][-1]
    assert step["step"] == 2
    assert step["interrupted"] is True
    assert found[-1]["type"] == "end"
    assert found[-1]["stopped"] == "terminated by SIGTERM"


SLOW_REGEX_PLAYBOOK = """# Slow Check

```bash {name=many-a}
python3 -c "print('a' * 3000)"
```

```output {regex}
(a|aa)*b
```
"""


@pytest.mark.parametrize(("signum", "status"), [(15, 143), (2, 130)])
def test_signal_during_output_check(tmp_path, signum, status):
    """A regex that backtracks for hours still lets SIGTERM or Ctrl-C end the run."""
    playbook = tmp_path / "slow.md"
    playbook.write_text(SLOW_REGEX_PLAYBOOK)
    transcript = tmp_path / "t.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "runbook", "run", str(playbook), "-s", "Slow Check",
         "--yes", "--transcript", str(transcript)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(lambda: '"type": "started"' in _text(transcript), 20)
        # The step itself ends well within that second; the check then runs.
        time.sleep(1.0)
        process.send_signal(signum)
        assert process.wait(timeout=20) == status
    finally:
        process.kill()
        process.wait(timeout=10)
    found = records(transcript)
    step = [r for r in found if r["type"] == "step"][-1]
    assert step["exit_status"] == 0
    assert step["interrupted"] is True
    assert "output_matched" not in step
    assert found[-1]["type"] == "end"


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def wait_for(condition, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        time.sleep(0.05)


def test_unused_value_warns(cli):
    result = cli(
        "run",
        DEMO,
        "-s",
        "Uses Placeholder",
        "--yes",
        "--var",
        "server-ip=h",
        "--var",
        "sever-ip=h",
    )
    assert result.exit_code == 0
    assert "warning: value 'sever-ip' is not used by any selected step" in result.output
    assert "value 'server-ip'" not in result.output


def test_sourced_variable_not_asked(cli):
    result = cli("run", DEMO, "-s", "Sourced Values", input="a\n")
    assert result.exit_code == 0
    assert "Value for $FROM_FILE" not in result.output
    assert "from file: loaded" in result.output


def test_quoted_secret_never_shown(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    secret = "pa\"ss$wo'rd"
    result = cli(
        "run", DEMO, "-s", "Quoted Secret", "--yes",
        "--var", f"api-key={secret}", "--transcript", str(transcript),
    )  # fmt: skip
    text = transcript.read_text()
    assert result.exit_code == 0
    assert 'echo "dq ***"' in result.output
    assert "echo sq '''***'''" in result.output
    assert "dq ***" in result.output
    for fragment in ("ss$wo", "ss\\$wo", 'pa\\"ss'):
        assert fragment not in result.output
        assert fragment not in text


def test_transcript_write_failure_keeps_running(cli):
    result = cli("run", DEMO, "-s", "Happy Path", "--yes", "--transcript", "/dev/full")
    assert result.exit_code == 0
    assert "warning: cannot append to transcript '/dev/full'" in result.output
    assert "nested-ok" in result.output


def test_dry_run_yes_checks_like_real_run(cli):
    destructive = cli("run", DEMO, "-s", "Destructive", "--dry-run", "--yes")
    missing = cli("run", DEMO, "-s", "Uses Placeholder", "--dry-run", "--yes")
    assert destructive.exit_code == 2
    assert "steps marked confirm cannot run unattended" in destructive.output
    assert missing.exit_code == 2
    assert "missing values for: server-ip" in missing.output


def test_confirm_after_run_all_shows_step_first(cli):
    result = cli("run", DEMO, "-s", "Destructive", input="a\nwipe\n")
    shown = result.output.index("Step 1/1  Demo › Destructive")
    asked = result.output.index("Type 'wipe' to run it")
    assert result.exit_code == 0
    assert shown < asked


def test_empty_placeholder_answer_asked_again(cli):
    result = cli("run", DEMO, "-s", "Uses Placeholder", input="r\n\nh2\n")
    assert result.exit_code == 0
    assert "<server-ip> needs a value" in result.output
    assert "target is h2" in result.output


def test_end_of_input_reason(cli):
    result = cli("run", DEMO, "-s", "Happy Path", input="")
    assert result.exit_code == 130
    assert "Stopped: no answer: the input ended at a prompt" in result.output


def test_headingless_playbook_runs_without_section(cli):
    result = cli("run", str(FIXTURES / "no-headings.md"), "--yes")
    assert result.exit_code == 0
    assert re.search(r"^headless-ran$", result.output, re.M)


def test_section_required_when_playbook_has_sections(cli):
    result = cli("run", DEMO, "--yes")
    assert result.exit_code == 2
    assert "--section is required" in result.output


def test_records_carry_run_id(cli, tmp_path):
    transcript = tmp_path / "t.jsonl"
    cli("run", DEMO, "-s", "Nested Check", "--yes", "--transcript", str(transcript))
    cli("run", DEMO, "-s", "Nested Check", "--yes", "--transcript", str(transcript))
    runs = [r["run"] for r in records(transcript)]
    assert len(set(runs)) == 2
    assert runs[0] == runs[1]


def test_default_transcript_unwritable_runs_anyway(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "state-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    result = cli("run", DEMO, "-s", "Nested Check", "--yes")
    assert result.exit_code == 0
    assert "running without a transcript" in result.output
    assert re.search(r"^nested-ok$", result.output, re.M)


def test_secret_not_in_var_error(cli):
    result = cli(
        "run", DEMO, "-s", "Nested Check", "--yes", "--var", "QPC_DB_KEY:Sup3rS3cret"
    )
    assert result.exit_code == 2
    assert "Sup3rS3cret" not in result.output
    assert "QPC_DB_KEY..." in result.output


def test_quoted_heredoc_variable_warns(cli, tmp_path):
    playbook = tmp_path / "p.md"
    playbook.write_text("# P\n\n```bash\ncat <<'EOF'\nkey=${QPC_DB_KEY}\nEOF\n```\n")
    result = cli("run", str(playbook), "-s", "P", "--yes")
    assert result.exit_code == 0
    assert (
        "p.md:5: $QPC_DB_KEY in step 1 is inside a quoted here-document"
        in result.output
    )
