"""The Compose deployment: a real project of the test server, and its scenarios.

This machine has only the old ``docker-compose`` program, not the ``docker
compose`` plugin that the playbooks call. The end-to-end tests put a
``docker`` wrapper first on PATH that hands ``docker compose ...`` to
``docker-compose`` and everything else to the real docker, so the real
Compose tool, engine and image do the work. Without any Compose tool they
are skipped with that reason; ``.ci/run`` installs docker-compose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_scenario

from runbook.sandbox.compose import ComposeProject, compose_tool
from runbook.sandbox.scenarios import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "fixtures" / "scenarios"
PLAYBOOK = ROOT / "playbooks" / "incident-response.md"


@pytest.fixture
def compose_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put a ``docker`` first on PATH whose ``compose`` runs docker-compose."""
    legacy = shutil.which("docker-compose")
    docker = shutil.which("docker")
    if legacy is None or docker is None:
        message = "needs docker and docker-compose (apt-get install docker-compose)"
        if os.environ.get("RUNBOOK_REQUIRE_DOCKER"):
            pytest.fail(message)  # CI: container tests never skip
        pytest.skip(message)
    wrapper = tmp_path / "bin" / "docker"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/bash\n"
        f'if [[ $1 == compose ]]; then shift; exec {legacy} "$@"; fi\n'
        f'exec {docker} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    yield


def test_without_the_plugin_the_reason_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A docker without the "compose" subcommand, as Debian 12 installs it.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(
        '#!/bin/bash\necho "docker: unknown command: docker $1" >&2\nexit 1\n',
        encoding="utf-8",
    )
    (fake_bin / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))
    tool, reason = compose_tool()
    assert tool is None
    assert "'docker compose' syntax" in reason
    assert "docker-compose-plugin" in reason


def test_compose_scenarios_name_a_compose_fault(tmp_path: Path) -> None:
    for name in ("server-not-starting-tls-missing-compose", "node-down-killed-compose"):
        assert load_scenario(SCENARIOS / f"{name}.yaml").deployment == "compose"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "playbook: a.md\nsection: S\nfault: oom\ndeployment: compose\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match="fault 'oom' has no Compose version"):
        load_scenario(bad)
    bad.write_text(
        "playbook: a.md\nsection: S\nfault: oom\ndeployment: k8s\n", encoding="utf-8"
    )
    with pytest.raises(ScenarioError, match="unknown deployment 'k8s'"):
        load_scenario(bad)


@pytest.mark.docker
@pytest.mark.slow
def test_project_serves_and_logs_to_compose(
    testserver_image: str, compose_on_path: None
) -> None:
    tool, reason = compose_tool()
    assert tool is not None, reason
    project = ComposeProject.create(ROOT / "fixtures", testserver_image, tool)
    try:
        project.up()
        assert project.healthy()
        logs = project.compose("logs", "server")
        assert "listening on udp" in logs
        assert project.state() == "running 0"
    finally:
        project.down()
    assert not project.directory.exists()
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={project.name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["server-not-starting-tls-missing-compose", "node-down-killed-compose"]
)
def test_compose_scenario_passes(
    testserver_image: str, compose_on_path: None, tmp_path: Path, name: str
) -> None:
    status, records = run_scenario(name, tmp_path / "run.jsonl", timeout=120)
    checks = [record for record in records if record["type"] == "check"]
    assert status == 0, records
    assert checks and all(check["passed"] for check in checks), checks
    steps = [record for record in records if record["type"] == "step"]
    assert [step["step"] for step in steps] == [2]
    assert steps[0]["command"].startswith("# ")
    assert "docker compose" in steps[0]["command"]
