"""BashSession against a real bash: state, output, stdin, timeouts, exits."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.errors import SessionEnded, SessionStartError
from runbook.session import BashSession


@pytest.fixture
def session(tmp_path) -> Iterator[BashSession]:
    shell = BashSession(cwd=str(tmp_path), interrupt_grace=5.0)
    shell.start()
    yield shell
    shell.close()


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def test_state_carries_between_steps(session, tmp_path):
    first = session.run(
        'mkdir -p work && cd work\nexport COLOR=red\ngreet() { echo "hi $1"; }\n'
    )
    second = session.run("export COLOR=blue")
    third = session.run('pwd\necho "$COLOR"\ngreet there')
    assert first.exit_status == 0
    assert second.exit_status == 0
    lines = text(third.output).splitlines()
    assert lines[0] == str(tmp_path / "work")
    assert lines[1] == "blue"
    assert lines[2] == "hi there"


def test_heredocs_quoted_and_unquoted(session):
    outcome = session.run("export G=hola\ncat <<EOF\n$G\nEOF\ncat <<'EOF'\n$G\nEOF\n")
    assert text(outcome.output) == "hola\n$G\n"


def test_continuations_and_multiline_quotes(session):
    outcome = session.run('echo one \\\n  two\necho "a\nb"\nf() {\n  echo in-f\n}\nf')
    assert text(outcome.output) == "one two\na\nb\nin-f\n"


def test_exit_status_captured(session):
    assert session.run("false").exit_status == 1
    assert session.run("(exit 42)").exit_status == 42
    assert session.run("true").exit_status == 0


def test_output_without_final_newline(session):
    outcome = session.run("printf 'no newline'")
    assert outcome.exit_status == 0
    assert outcome.output == b"no newline"


def test_unclean_output_kept_raw(session):
    outcome = session.run(
        r"printf 'a\xffb\r50%%\r100%%\n\033[31mred\033[0m'; printf '\n'"
    )
    assert outcome.exit_status == 0
    assert b"\xff" in outcome.output
    assert b"\r50%\r100%" in outcome.output
    assert b"\x1b[31mred\x1b[0m" in outcome.output


def test_very_long_line(session):
    outcome = session.run("head -c 300000 /dev/zero | tr '\\0' x; echo")
    assert outcome.exit_status == 0
    assert outcome.output.count(b"x") == 300000


def test_marker_lookalike_does_not_end_step(session):
    outcome = session.run(r"printf '\036RBdeadbeef:0\037'; echo after")
    assert outcome.exit_status == 0
    assert outcome.output.endswith(b"after\r\n")


def test_stdin_is_empty_without_terminal(session):
    read = session.run("read -r NAME")
    cat = session.run("cat; echo cat=$?")
    assert read.exit_status == 1
    assert text(cat.output) == "cat=0\n"


def test_step_reading_tty_times_out(session):
    outcome = session.run("read -r NAME </dev/tty", timeout=0.5)
    assert outcome.timed_out
    assert session.run("echo alive").output == b"alive\r\n"


def test_terminal_input_reaches_step(tmp_path):
    reader, writer = os.pipe()
    os.write(writer, b"typed answer\n")
    with BashSession(cwd=str(tmp_path)) as shell:
        outcome = shell.run(
            'read -r NAME; echo "got $NAME"',
            timeout=10,
            stdin_from_terminal=True,
            input_fd=reader,
        )
    os.close(reader)
    os.close(writer)
    assert outcome.exit_status == 0
    # The terminal echoes the typing, then the step prints what it read.
    assert text(outcome.output) == "typed answer\ngot typed answer\n"


def test_timeout_interrupts_and_session_survives(session):
    session.run("export KEEP=yes")
    started = time.monotonic()
    outcome = session.run("sleep 30", timeout=0.5)
    elapsed = time.monotonic() - started
    assert outcome.timed_out
    assert not outcome.killed
    assert elapsed < 5
    after = session.run('echo "$KEEP"')
    assert after.output == b"yes\r\n"


def test_slow_interrupt_handler_within_grace(session):
    code = (
        'bash -c \'trap "echo got-int; sleep 2; echo handler-done; exit 4" INT; '
        "echo started; while :; do sleep 0.1; done'"
    )
    outcome = session.run(code, timeout=2)
    assert outcome.timed_out
    assert not outcome.killed
    assert not outcome.session_ended
    assert b"got-int" in outcome.output
    assert b"handler-done" in outcome.output
    assert session.run("echo next").output == b"next\r\n"


def test_ignored_interrupt_is_killed(tmp_path):
    with BashSession(cwd=str(tmp_path), interrupt_grace=0.5) as shell:
        outcome = shell.run("bash -c 'trap \"\" INT; sleep 30'", timeout=0.5)
        assert outcome.timed_out
        assert outcome.killed
        assert outcome.exit_status is None
        assert shell.run("echo ok").output == b"ok\r\n"


def test_exit_ends_session_at_once(session):
    started = time.monotonic()
    outcome = session.run("exit 3", timeout=30)
    assert outcome.session_ended
    assert outcome.exit_status == 3
    assert time.monotonic() - started < 2
    with pytest.raises(SessionEnded):
        session.run("true")


def test_set_e_then_false_ends_session(session):
    assert session.run("set -e").exit_status == 0
    outcome = session.run("false", timeout=30)
    assert outcome.session_ended
    assert outcome.exit_status == 1


def test_restart_gives_fresh_shell(session):
    session.run("export GONE=1")
    session.run("exit 0")
    session.restart()
    assert session.run('echo "[${GONE:-unset}]"').output == b"[unset]\r\n"


def test_no_bracketed_paste_sequences(tmp_path):
    env = dict(os.environ, TERM="xterm-256color")
    with BashSession(cwd=str(tmp_path), env=env) as shell:
        outcome = shell.run("bind 'set enable-bracketed-paste on' 2>/dev/null; echo x")
        again = shell.run("echo y")
    assert b"\x1b[?2004" not in outcome.output
    assert again.output == b"y\r\n"


def test_history_not_written(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), HISTFILE=str(tmp_path / "hist"))
    with BashSession(cwd=str(tmp_path), env=env) as shell:
        shell.run("echo secret-value >/dev/null")
    assert not (tmp_path / "hist").exists()
    assert not (tmp_path / ".bash_history").exists()


def test_output_streams_while_running(session):
    chunks: list[tuple[float, bytes]] = []
    started = time.monotonic()
    session.run(
        "echo first; sleep 0.5; echo second",
        on_output=lambda data: chunks.append((time.monotonic() - started, data)),
    )
    first_seen = next(t for t, data in chunks if b"first" in data)
    assert first_seen < 0.4


def test_start_failure_is_clear(tmp_path):
    shell = BashSession(command=["/bin/sh", "-c", "echo booting; exit 3"])
    with pytest.raises(SessionStartError) as raised:
        shell.start()
    shell.close()
    assert "exited with status 3" in str(raised.value)
    assert "booting" in str(raised.value)


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b". /tmp/s\r\n", b"out\r\n"], b"out\r\n"),
        ([b". /tm", b"p/s\r\nout"], b"out"),
        ([b". /tmp/s\r\nout"], b"out"),
        ([b"out\r\n"], b"out\r\n"),
        ([b". other\r\n"], b". other\r\n"),
        ([b"o"], b"o"),
    ],
)
def test_echo_filter_drops_one_leading_echo(chunks, expected):
    from runbook.terminal import EchoFilter

    received: list[bytes] = []
    echo_filter = EchoFilter(b". /tmp/s\r\n", received.append)
    for chunk in chunks:
        echo_filter(chunk)
    echo_filter.flush()
    assert b"".join(received) == expected


def test_terminal_input_repeatedly(tmp_path):
    with BashSession(cwd=str(tmp_path)) as shell:
        for attempt in range(20):
            reader, writer = os.pipe()
            os.write(writer, f"answer-{attempt}\n".encode())
            outcome = shell.run(
                'read -r NAME; echo "got $NAME"',
                timeout=10,
                stdin_from_terminal=True,
                input_fd=reader,
            )
            os.close(reader)
            os.close(writer)
            assert text(outcome.output) == f"answer-{attempt}\ngot answer-{attempt}\n"


@pytest.mark.parametrize(
    "code",
    [
        "PS1='$ '",
        "unset PS1",
        "PS2='> '",
        "PS1='\\u@\\h:\\w\\$ '; PROMPT_COMMAND='echo hi'",
        "unset PROMPT_COMMAND",
    ],
)
def test_step_changing_prompt_keeps_session(session, code):
    changed = session.run(code, timeout=5)
    after = session.run("echo still-here; (exit 4)", timeout=5)
    assert not changed.timed_out
    assert not changed.session_ended
    assert after.exit_status == 4
    assert b"still-here" in after.output


def test_step_file_emptied_after_step(session):
    session.run("export TOKEN=abc123secret")
    step_file = Path(session._step_file)
    assert step_file.read_bytes() == b""


def test_stale_workdir_removed(tmp_path):
    import subprocess

    from runbook.workdir import workdir_base

    finished = subprocess.Popen(["true"])
    finished.wait()
    stale = Path(workdir_base()) / f"runbook.{finished.pid}.test"
    stale.mkdir()
    (stale / "step").write_text("export SECRET=left-behind\n")
    with BashSession():
        assert not stale.exists()


def test_background_jobs_hung_up_at_close(tmp_path):
    pid_file = tmp_path / "pid"
    with BashSession(cwd=str(tmp_path)) as shell:
        shell.run(f"sleep 300 & echo $! > {pid_file}")
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_forwarded_ctrl_c_marks_interrupted(tmp_path):
    import threading

    reader, writer = os.pipe()
    threading.Timer(0.5, os.write, (writer, b"\x03")).start()
    with BashSession(cwd=str(tmp_path)) as shell:
        outcome = shell.run(
            "sleep 20", timeout=10, stdin_from_terminal=True, input_fd=reader
        )
    os.close(reader)
    os.close(writer)
    assert outcome.interrupted
    assert outcome.exit_status == 130
    assert not outcome.timed_out


@pytest.mark.parametrize("term", ["xterm-256color", "dumb", "vt100", "screen", None])
def test_any_term_gives_clean_output(tmp_path, term):
    env = {k: v for k, v in os.environ.items() if k != "TERM"}
    if term is not None:
        env["TERM"] = term
    with BashSession(cwd=str(tmp_path), env=env) as shell:
        outcome = shell.run("echo clean; (exit 6)")
    assert outcome.output == b"clean\r\n"
    assert outcome.exit_status == 6


def test_timeout_abandons_rest_of_step(tmp_path):
    code = "echo begin\nbash -c 'trap \"\" INT; sleep 30'\necho DANGER-after-kill\n"
    with BashSession(cwd=str(tmp_path), interrupt_grace=0.5) as shell:
        outcome = shell.run(code, timeout=1)
        after = shell.run("echo next")
    assert outcome.killed
    assert b"DANGER" not in outcome.output
    assert after.output == b"next\r\n"


def test_handled_interrupt_abandons_rest(session):
    code = (
        "bash -c 'trap \"echo handled; exit 0\" INT; sleep 30'\n"
        "echo DANGER-after-handler\n"
    )
    outcome = session.run(code, timeout=1)
    assert outcome.timed_out
    assert b"handled" in outcome.output
    assert b"DANGER" not in outcome.output
    assert session.run("echo next").output == b"next\r\n"


def test_shell_int_trap_goes_on_after_timeout(session):
    """The documented exception: bash runs a step's INT trap and goes on."""
    code = "trap 'echo cleanup' INT\nsleep 30\necho after-trap\n"
    outcome = session.run(code, timeout=1)
    later = session.run("sleep 30; echo later-step", timeout=1)
    assert outcome.timed_out
    assert not outcome.killed
    assert text(outcome.output).splitlines()[-2:] == ["cleanup", "after-trap"]
    assert later.timed_out
    assert text(later.output).splitlines()[-2:] == ["cleanup", "later-step"]


def test_forwarded_ctrl_c_abandons_rest(tmp_path):
    reader, writer = os.pipe()
    seen = bytearray()

    def press_ctrl_c_when_ready(chunk: bytes) -> None:
        # Only once the inner bash has set its trap, so a busy machine cannot
        # deliver Ctrl-C before the trap exists.
        seen.extend(chunk)
        if b"trap-set" in seen and b"\x03" not in seen:
            seen.extend(b"\x03")
            os.write(writer, b"\x03")

    code = (
        "bash -c 'trap \"echo handled; exit 0\" INT; echo trap-set; sleep 30'\n"
        "echo DANGER-after-ctrl-c\n"
    )
    with BashSession(cwd=str(tmp_path)) as shell:
        outcome = shell.run(
            code,
            timeout=10,
            stdin_from_terminal=True,
            input_fd=reader,
            on_output=press_ctrl_c_when_ready,
        )
    os.close(reader)
    os.close(writer)
    assert outcome.interrupted
    assert b"handled" in outcome.output
    assert b"DANGER" not in outcome.output


@pytest.mark.parametrize("code", ["exec 2>/dev/null", "exec >/dev/null"])
def test_step_redirecting_shell_output(session, code):
    changed = session.run(code, timeout=5)
    after = session.run("(exit 4)", timeout=5)
    assert changed.exit_status == 0
    assert not changed.timed_out
    assert after.exit_status == 4
