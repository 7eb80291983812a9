"""The key-rotation playbook end to end, one section per leaked secret.

Each section runs as ``runbook run --target sandbox --yes --allow-destructive``
would, against a server whose secret has leaked (the scenario's fault). Its
post-condition then proves the rotation: the old secret no longer works and
the new one does. Running only the section's first step, which rotates
nothing, must fail that same post-condition, so the check can fail.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runbook.commands import RunRequest
from runbook.sandbox.run import Sandbox, run_in_sandbox
from runbook.transcript import read_transcript

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "playbooks" / "key-rotation.md"

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: section -> (fault, the post-condition that proves the rotation)
SECTIONS = {
    "Auth Token Rotation": ("token-leaked", "old token rejected"),
    "TLS Certificate Rotation": ("tls-key-leaked", "certificate rotated"),
    "Database Encryption Key Rotation": ("db-key-leaked", "database rekeyed"),
    "OPAQUE ServerSetup Rotation": ("opaque-setup-leaked", "opaque rotated"),
}


def _run(
    section: str, tmp_path: Path, steps: tuple[int, ...] = ()
) -> tuple[int, str, list[dict[str, object]], Sandbox]:
    transcript = tmp_path / "run.jsonl"
    stdout = io.StringIO()
    seen: list[Sandbox] = []
    request = RunRequest(
        playbook=str(PLAYBOOK),
        section=section,
        assume_yes=True,
        allow_destructive=True,
        timeout=300,
        transcript=str(transcript),
        target="sandbox",
        step_numbers=steps,
    )
    status = run_in_sandbox(request, stdout, on_ready=seen.append)
    return status, stdout.getvalue(), list(read_transcript(transcript)), seen[0]


def _checks(records: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {
        str(record["name"]): record for record in records if record["type"] == "check"
    }


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_rotation_replaces_the_leaked_secret(
    testserver_image: str, tmp_path: Path, section: str
) -> None:
    fault, proof = SECTIONS[section]
    status, output, records, sandbox = _run(section, tmp_path)

    checks = _checks(records)
    assert status == 0, (output, checks)
    assert records[0]["type"] == "sandbox"
    assert records[0]["fault"] == fault
    assert proof in checks
    assert all(c["passed"] and not c["skipped"] for c in checks.values()), checks
    steps = [record for record in records if record["type"] == "step"]
    assert steps and all(step["exit_status"] == 0 for step in steps)
    # No secret of the server reached the output or the transcript.
    text = output + json.dumps(records)
    assert sandbox.server.db_key not in text
    assert sandbox.server.auth_token not in text


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_skipping_the_rotation_fails_its_check(
    testserver_image: str, tmp_path: Path, section: str
) -> None:
    _, proof = SECTIONS[section]
    status, output, records, _ = _run(section, tmp_path, steps=(1,))

    checks = _checks(records)
    assert status == 1, output
    assert not checks[proof]["passed"], checks[proof]
    assert f"sandbox check(s) failed: {proof}" in output
