"""Storage Full end to end: the playbook section against a server whose disk is full.

``runbook run --target sandbox --yes`` builds (or reuses) the test server
image, fills the data volume, runs Diagnosis and Recovery in the container
and checks the scenario's post-conditions. The playbook as its authors wrote
it (tests/fixtures/original/) fails the same checks: that is what proved its
Recovery commands wrong.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runbook.commands import RunRequest
from runbook.sandbox.run import Sandbox
from runbook.transcript import read_transcript

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "playbooks" / "incident-response.md"
ORIGINAL = ROOT / "tests" / "fixtures" / "original" / "incident-response.md"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _run_storage_full(
    playbook: Path, tmp_path: Path, steps: tuple[int, ...] = ()
) -> tuple[int, str, list[dict[str, object]], Sandbox]:
    transcript = tmp_path / "run.jsonl"
    stdout = io.StringIO()
    seen: list[Sandbox] = []
    request = RunRequest(
        playbook=str(playbook),
        section="Storage Full",
        assume_yes=True,
        allow_destructive=True,
        timeout=300,
        transcript=str(transcript),
        target="sandbox",
        step_numbers=steps,
    )
    from runbook.sandbox.run import run_in_sandbox

    status = run_in_sandbox(request, stdout, on_ready=seen.append)
    return status, stdout.getvalue(), list(read_transcript(transcript)), seen[0]


def _records(records: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    return [record for record in records if record["type"] == kind]


def test_storage_full_recovers_a_full_data_volume(
    testserver_image: str, tmp_path: Path
) -> None:
    status, output, records, sandbox = _run_storage_full(PLAYBOOK, tmp_path)

    assert status == 0, output
    assert "0 bytes free (100%)" in sandbox.evidence
    assert "No space left on device" in sandbox.evidence
    steps = {record["step"]: record for record in _records(records, "step")}
    diagnosis = str(steps[1]["output"])
    assert "100% /var/lib/quicprochat" in " ".join(diagnosis.split())
    assert steps[2]["exit_status"] == 0
    checks = {record["name"]: record for record in _records(records, "check")}
    assert set(checks) == {
        "step 1 output matches '100%\\s+/var/lib/quicprochat'",
        "service active",
        "expired messages gone",
        "unexpired messages kept",
        "client roundtrip",
    }
    assert all(check["passed"] for check in checks.values()), checks
    assert int(str(sandbox.baseline["expired"])) > 10_000
    kept = str(checks["unexpired messages kept"]["detail"])
    assert kept.startswith(f"{sandbox.baseline['unexpired']} unexpired now")
    (sandbox_record,) = _records(records, "sandbox")
    assert sandbox_record["fault"] == "disk-full"
    assert records[-1]["type"] == "end"
    assert records[-1]["exit_code"] == 0
    # The container is gone, and no secret reached the output or the record.
    assert not sandbox.server.id
    text = output + json.dumps(records)
    assert sandbox.server.db_key not in text
    assert sandbox.server.auth_token not in text


def test_original_recovery_fails_checks(testserver_image: str, tmp_path: Path) -> None:
    status, output, records, _ = _run_storage_full(ORIGINAL, tmp_path)

    assert status == 1
    steps = {record["step"]: record for record in _records(records, "step")}
    assert "unable to open database" in str(steps[2]["output"])
    checks = {record["name"]: record for record in _records(records, "check")}
    assert not checks["expired messages gone"]["passed"]
    assert checks["unexpired messages kept"]["passed"]
    assert "sandbox check(s) failed: expired messages gone" in output


def test_checks_of_steps_left_out_are_not_counted(
    testserver_image: str, tmp_path: Path
) -> None:
    status, output, records, _ = _run_storage_full(PLAYBOOK, tmp_path, steps=(2,))

    assert status == 0, output
    checks = _records(records, "check")
    first = next(check for check in checks if str(check["name"]).startswith("step 1"))
    assert first["skipped"] and first["passed"]
    assert first["detail"] == "not checked: the step was not selected"
    assert all(check["passed"] for check in checks)
    assert _records(records, "sandbox")[0] == records[0]
