"""Shared fixtures: the test server image and containers started from it.

Container tests carry the ``docker`` marker. Without a reachable Docker
engine they skip on a developer's machine and fail when
RUNBOOK_REQUIRE_DOCKER=1 (set by .ci/run), so CI never skips them silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
