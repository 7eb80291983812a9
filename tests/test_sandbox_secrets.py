"""Every secret of the server's settings is masked in sandbox runs.

A step may print the env file or a setting it does not name as a variable,
so masking only the variables that steps use is not enough.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from runbook.commands import RunRequest
from runbook.sandbox.run import Sandbox, run_in_sandbox

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_unnamed_settings_are_masked(
    testserver_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "fixtures",
        root / "fixtures",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"),
    )
    shutil.copy(ROOT / "Dockerfile.testserver", root)
    (root / "fixtures" / "scenarios" / "leak.yaml").write_text(
        "playbook: leak.md\nsection: Leak\nfault: process-hung\n", encoding="utf-8"
    )
    monkeypatch.setenv("RUNBOOK_SANDBOX_ROOT", str(root))
    playbook = tmp_path / "leak.md"
    playbook.write_text(
        "# Leak\n\n```bash\n"
        "grep -E '^QPC_(DB_KEY|AUTH_TOKEN)=' /etc/quicprochat/qpc-server.env\n"
        "```\n",
        encoding="utf-8",
    )
    transcript = tmp_path / "run.jsonl"
    stdout = io.StringIO()
    seen: list[Sandbox] = []
    status = run_in_sandbox(
        RunRequest(
            playbook=str(playbook),
            section="Leak",
            assume_yes=True,
            timeout=60,
            transcript=str(transcript),
            target="sandbox",
        ),
        stdout,
        on_ready=seen.append,
        say=lambda line: None,
    )
    assert status == 0, stdout.getvalue()
    server = seen[0].server
    shown = stdout.getvalue()
    recorded = transcript.read_text(encoding="utf-8")
    assert "QPC_AUTH_TOKEN=***" in shown
    assert "QPC_DB_KEY=***" in shown
    for secret in (server.auth_token, server.db_key):
        assert secret not in shown
        assert secret not in recorded
