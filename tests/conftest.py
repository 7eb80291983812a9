"""Shared fixtures: the test server image and containers started from it.

Container tests carry the ``docker`` marker. Without a reachable Docker
engine they skip on a developer's machine and fail when
RUNBOOK_REQUIRE_DOCKER=1 (set by .ci/run), so CI never skips them silently.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_scenario(
    name: str, transcript: Path, timeout: float = 300
) -> tuple[int, list[dict[str, object]]]:
    """Run a scenario of fixtures/scenarios as ``runbook test`` does.

    Returns the exit status and the transcript's records.
    """
    from runbook.commands import RunRequest
    from runbook.sandbox.run import run_in_sandbox
    from runbook.sandbox.scenarios import load_scenario
    from runbook.transcript import read_transcript

    scenario = load_scenario(ROOT / "fixtures" / "scenarios" / f"{name}.yaml")
    request = RunRequest(
        playbook=str(ROOT / "playbooks" / scenario.playbook),
        section=scenario.section,
        assume_yes=True,
        allow_destructive=True,
        timeout=timeout,
        transcript=str(transcript),
        target="sandbox",
        scenario=name,
        testing=True,
    )
    status = run_in_sandbox(request, io.StringIO(), say=lambda line: None)
    return status, list(read_transcript(transcript))


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return f"the Docker engine is not reachable: {result.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (or fail under RUNBOOK_REQUIRE_DOCKER=1) when Docker is missing."""
    problem = _docker_problem()
    if problem is None:
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        return
    if os.environ.get("RUNBOOK_REQUIRE_DOCKER") == "1":
        pytest.fail(f"RUNBOOK_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def testserver_image(docker_engine: None) -> str:
    """The test server image tag, built once per machine (cached by content hash)."""
    from runbook.sandbox.image import ensure_image
    from runbook.sandbox.layout import SandboxLayout

    def progress(message: str) -> None:
        print(f"[testserver image] {message}", file=sys.stderr, flush=True)

    return ensure_image(SandboxLayout(ROOT), progress=progress).tag


@pytest.fixture
def start_server(
    testserver_image: str,
) -> Iterator[Callable[..., object]]:
    """Start test server containers; every one is removed after the test."""
    from runbook.sandbox.container import ContainerOptions, ServerContainer

    started: list[ServerContainer] = []

    def start(
        options: ContainerOptions | None = None, **kwargs: object
    ) -> ServerContainer:
        server = ServerContainer(
            testserver_image,
            ROOT / "fixtures" / "image" / "qpc-server.env",
            options=options,
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
