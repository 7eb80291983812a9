"""--target sandbox through the CLI: dry runs and the errors before any start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / "playbooks" / "incident-response.md")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox root with the real build files and scenarios the test may change."""
    root = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "fixtures",
        root / "fixtures",
        ignore=shutil.ignore_patterns("wheels", "__pycache__", "*.egg-info", "data"),
    )
    shutil.copy(ROOT / "Dockerfile.testserver", root)
    monkeypatch.setenv("RUNBOOK_SANDBOX_ROOT", str(root))
    return root


def test_dry_run_shows_what_the_sandbox_does(cli) -> None:
    result = cli(
        "run",
        PLAYBOOK,
        "-s",
        "Storage Full",
        "--target",
        "sandbox",
        "--dry-run",
        "--yes",
        "--allow-destructive",
    )
    assert result.exit_code == 0, result.output
    assert "sandbox: scenario storage-full.yaml, fault disk-full" in result.output
    assert "sandbox: supplies QPC_DB_KEY from the server's settings" in result.output
    assert "sandbox: checks expired messages gone" in result.output
    assert "missing" not in result.output


def test_dry_run_takes_the_scenarios_variables(cli) -> None:
    result = cli(
        "run", PLAYBOOK, "-s", "DDoS", "--target", "sandbox", "-n", "--yes",
        "--allow-destructive",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "iptables -A INPUT -s 192.0.2.66 -j DROP" in result.output


def test_dry_run_fails_where_the_run_would(cli, checkout: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "untested.md"
    playbook.write_text("# Untested\n\n```bash\nuptime\n```\n")
    result = cli("run", str(playbook), "-s", "Untested", "--target", "sandbox", "-n")
    assert result.exit_code == 2
    assert "no scenario in" in result.output


def test_unreachable_engine_is_one_clear_error(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for args in (
        ("sandbox", "clean"),
        ("sandbox", "build"),
        (
            "run", PLAYBOOK, "-s", "Storage Full", "--target", "sandbox", "--yes",
            "--allow-destructive",
        ),
    ):  # fmt: skip
        result = cli(*args)
        assert result.exit_code == 1, args
        assert (
            "the Docker engine is not reachable ('docker info' failed" in result.output
        )
        assert "mmdebstrap" not in result.output
        assert "pull" not in result.output


def test_scenario_steps_outside_the_section_fail_before_start(
    cli, checkout: Path
) -> None:
    scenario = checkout / "fixtures" / "scenarios" / "storage-full.yaml"
    scenario.write_text(
        scenario.read_text() + "skip:\n  - step: 7\n    reason: not here\n"
    )
    result = cli("run", PLAYBOOK, "-s", "Storage Full", "--target", "sandbox", "--yes")
    assert result.exit_code == 2
    assert f"{scenario}: step 7 does not exist" in result.output
    assert "has steps 1 to 2" in result.output


def test_scenario_bad_section_names_file(cli, checkout: Path) -> None:
    bad = checkout / "fixtures" / "scenarios" / "zz-bad.yaml"
    bad.write_text(
        "playbook: incident-response.md\nsection: No Such Section\nfault: oom\n"
    )
    result = cli("run", PLAYBOOK, "-s", "Storage Full", "--target", "sandbox", "--yes")
    assert result.exit_code == 2
    assert f"{bad}: section 'No Such Section'" in result.output


def test_confirm_steps_are_refused_before_start(
    cli, checkout: Path, tmp_path: Path
) -> None:
    playbook = tmp_path / "incident-response.md"
    playbook.write_text(
        "# Storage Full\n\n```bash {confirm}\nsystemctl stop qpc-server\n```\n"
    )
    result = cli(
        "run", str(playbook), "-s", "Storage Full", "--target", "sandbox", "--yes"
    )
    assert result.exit_code == 2
    assert "confirm" in result.output
    assert "sandbox:" not in result.output
