"""Transcripts: records on disk as they happen, masking, raw bytes, torn lines."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook.errors import TranscriptError, TranscriptPathError
from runbook.transcript import (
    Masker,
    StreamMasker,
    Transcript,
    output_fields,
    read_transcript,
)

DEMO = str(Path(__file__).parent / "fixtures" / "playbooks" / "demo.md")


def test_records_are_json_lines_with_time(tmp_path):
    path = tmp_path / "t.jsonl"
    with Transcript(path) as transcript:
        transcript.write("start", playbook="p.md")
        transcript.write("end", exit_code=0)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 2
    assert first["type"] == "start"
    assert first["playbook"] == "p.md"
    assert first["time"].endswith("+00:00")


def test_record_visible_before_close(tmp_path):
    path = tmp_path / "t.jsonl"
    transcript = Transcript(path)
    transcript.open()
    transcript.write("start", playbook="p.md")
    assert json.loads(path.read_text())["type"] == "start"
    transcript.close()


def test_secrets_masked_in_every_field(tmp_path):
    path = tmp_path / "t.jsonl"
    with Transcript(path, Masker(["hunter2-secret"])) as transcript:
        transcript.write(
            "step", command="login hunter2-secret", nested={"a": ["x hunter2-secret"]}
        )
    text = path.read_text()
    assert "hunter2-secret" not in text
    assert "login ***" in text
    assert "x ***" in text


def test_short_values_not_masked():
    masker = Masker(["abc"])
    assert masker.text("abc abc") == "abc abc"


def test_stream_masker_catches_split_secret():
    stream = StreamMasker(Masker(["topsecretvalue"]))
    pieces = [
        stream.feed(b"before tops"),
        stream.feed(b"ecretvalue after"),
        stream.flush(),
    ]
    joined = b"".join(pieces)
    assert joined == b"before *** after"


def test_stream_masker_without_secrets_passes_through():
    stream = StreamMasker(Masker())
    assert stream.feed(b"abc") == b"abc"
    assert stream.flush() == b""


def test_invalid_utf8_kept_as_base64():
    raw = b"bad \xff byte"
    fields = output_fields(raw, Masker())
    assert fields["output"] == "bad \ufffd byte"
    assert base64.b64decode(fields["output_base64"]) == raw


def test_valid_utf8_has_no_base64():
    fields = output_fields("grüße".encode(), Masker())
    assert fields == {"output": "grüße"}


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "start"}\n{"type": "st')
    assert [r["type"] for r in read_transcript(path)] == ["start"]


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"type": "start"}\nnot json\n{"type": "end"}\n')
    with pytest.raises(TranscriptError, match=r"t.jsonl:2: invalid JSON"):
        list(read_transcript(path))


def test_unwritable_transcript_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    transcript = Transcript(blocker / "t.jsonl")
    with pytest.raises(TranscriptPathError, match="--transcript PATH"):
        transcript.open()


def test_killed_run_keeps_records(tmp_path):
    path = tmp_path / "t.jsonl"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    process = subprocess.Popen(
        [sys.executable, "-m", "runbook", "run", DEMO, "-s", "Killed Midway",
         "--yes", "--transcript", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and '"output": "second-started' in path.read_text():
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout:
            process.stdout.close()
    records = list(read_transcript(path))
    kinds = [r["type"] for r in records]
    # The output record of step 2 is written while it runs.
    assert kinds == ["start", "started", "step", "started", "output"]
    assert records[2]["output"] == "first-done\r\n"
    assert records[2]["exit_status"] == 0
    assert records[3]["command"] == "echo second-started\nsleep 60\n"
    assert records[4]["output"] == "second-started\r\n"


def test_stream_masker_releases_on_idle():
    stream = StreamMasker(Masker(["a-long-secret-value"]))
    held = stream.feed(b"Continue? [y/N] ")
    released = stream.feed(b"")
    assert held + released == b"Continue? [y/N] "
    assert released != b""


def test_write_failure_reported_once(tmp_path):
    messages: list[str] = []
    transcript = Transcript("/dev/full")
    transcript.on_error = messages.append
    transcript.open()
    transcript.write("start", playbook="p.md")
    transcript.write("end", exit_code=0)
    transcript.close()
    assert len(messages) == 1
    assert "/dev/full" in messages[0]
    assert "No space left on device" in messages[0]
    assert transcript.error is not None
