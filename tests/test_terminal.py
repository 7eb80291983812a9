"""``runbook run`` in a real terminal, answered the way an operator would."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import pexpect
import pytest

DEMO = str(Path(__file__).parent / "fixtures" / "playbooks" / "demo.md")
PROMPT = "[r]un, [s]kip, [e]dit, run [a]ll remaining, [q]uit?"


@pytest.fixture
def spawn(tmp_path):
    children: list[pexpect.spawn] = []

    def start(*args: str) -> pexpect.spawn:
        env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm")
        env.pop("NO_COLOR", None)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "runbook", "run", DEMO, *args],
            cwd=str(tmp_path),
            env=env,
            encoding="utf-8",
            codec_errors="replace",
            timeout=20,
            dimensions=(40, 200),
        )
        children.append(child)
        return child

    yield start
    for child in children:
        with contextlib.suppress(OSError):
            child.close(force=True)


def test_operator_types_into_step(spawn):
    child = spawn("--section", "Reads Stdin")
    child.expect_exact("Step 1/1")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.send("alice\r")
    # The terminal echoes the typing, then the step prints what it read.
    child.expect_exact("alice")
    child.expect_exact("got [alice] status 0")
    child.expect_exact("Step 1 succeeded")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_step_and_asks(spawn):
    child = spawn("--section", "Slow Step")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.expect_exact("slow-started")
    # Give bash time to start sleep: a Ctrl-C that lands while bash is still
    # forking reaches bash, not sleep, exactly as on a real keyboard.
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect_exact("Step 1 failed")
    child.expect_exact("[r]etry, [s]kip, [e]dit, [q]uit?")
    child.send("s\r")
    child.expect_exact("Step 2/2")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.expect_exact("after-slow")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_placeholder_asked_on_terminal(spawn):
    child = spawn("--section", "Uses Placeholder")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.expect_exact("Value for <server-ip>")
    child.send("192.0.2.7\r")
    child.expect_exact("target is 192.0.2.7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_secret_value_prompt_hides_input(spawn):
    child = spawn("--section", "Uses Variable")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.expect_exact("Value for $QPC_AUTH_TOKEN")
    child.send("hunter2-hunter2\r")
    child.expect_exact("token length 15")
    child.expect_exact("token is ***")
    child.expect(pexpect.EOF)
    child.close()
    assert "hunter2" not in (child.before or "")
    assert child.exitstatus == 0


def test_quit_at_first_prompt(spawn):
    child = spawn("--section", "Happy Path")
    child.expect_exact(PROMPT)
    child.send("q\r")
    child.expect_exact("Stopped: operator quit before step 1")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_summary_shows_brackets_literally(spawn):
    child = spawn("--section", "Brackets")
    child.expect_exact(PROMPT)
    child.send("r\r")
    child.expect_exact("Summary")
    child.expect(pexpect.EOF)
    child.close()
    assert "Traceback" not in (child.before or "")
    assert "[/] and [bold]not" in (child.before or "")
    assert child.exitstatus == 0


def test_prompt_without_newline_appears_with_secret(spawn):
    child = spawn(
        "--section", "Prompt Without Newline", "--yes",
        "--var", "QPC_AUTH_TOKEN=0123456789abcdef0123456789abcdef01234567",
    )  # fmt: skip
    started = time.monotonic()
    child.expect_exact("Really continue? [y/N] ")
    seen_after = time.monotonic() - started
    child.expect(pexpect.EOF)
    child.close()
    # The step sleeps 1 s after its prompt; the prompt must show before that.
    assert seen_after < 1.5


def test_closed_terminal_ends_run_cleanly(spawn, tmp_path):
    transcript = tmp_path / "t.jsonl"
    child = spawn("--section", "Slow Step", "--yes", "--transcript", str(transcript))
    child.expect_exact("slow-started")
    os.close(child.child_fd)
    _, status = os.waitpid(child.pid, 0)
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert os.WEXITSTATUS(status) == 129
    assert records[-1]["type"] == "end"
    assert records[-1]["stopped"] == "terminated by SIGHUP"
    step = [r for r in records if r["type"] == "step"][-1]
    assert step["step"] == 1
    assert step["interrupted"] is True
