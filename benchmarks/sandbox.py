"""The sandbox's costs: image builds, container start, and steps through docker exec.

Measures, in one run:

1. warm build: ``ensure_image`` when the tagged image exists (every sandbox
   run after the first pays this);
2. incremental build: a copy of the checkout with one server source file
   changed, so Docker reuses the package layers and redoes the rest (what a
   developer pays after editing the server);
3. cold build (only with ``--cold``): the same copy built with
   ``--no-cache``, every layer from scratch. ``--bootstrap`` also removes and
   remakes the base image, and times that separately;
4. container start to healthy: ``ServerContainer.start`` until /health
   returns 200 through the mapped port (target: under 3 s warm);
5. per-step cost of the docker target against the local target, both as
   ``BashSession.run`` of trivial steps, and against the baseline of one
   ``docker exec CONTAINER bash -c …`` per step (what a runner without a
   persistent session in the container pays).

Usage: python benchmarks/sandbox.py [--steps 200] [--starts 5] [--cold] [--bootstrap]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook.sandbox import image as images  # noqa: E402
from runbook.sandbox.container import ContainerOptions, ServerContainer  # noqa: E402
from runbook.sandbox.layout import SandboxLayout  # noqa: E402
from runbook.session import BashSession  # noqa: E402
from runbook.targets import DockerTarget  # noqa: E402

ENV_DEFAULTS = ROOT / "fixtures" / "image" / "qpc-server.env"


def quiet(_message: str) -> None:
    pass


def changed_copy(directory: Path) -> SandboxLayout:
    """Copy the build inputs into ``directory`` with one server module changed."""
    shutil.copytree(
        ROOT / "fixtures",
        directory / "fixtures",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "data"),
    )
    shutil.copy(ROOT / "Dockerfile.testserver", directory)
    shutil.copy(ROOT / ".dockerignore", directory)
    module = directory / "fixtures" / "server" / "quicprochat" / "__init__.py"
    module.write_text(module.read_text() + f"\n# benchmark {time.time_ns()}\n")
    return SandboxLayout(directory)


def time_build(layout: SandboxLayout, no_cache: bool) -> tuple[float, str]:
    base_id = images.ensure_base_image(quiet)
    images.fetch_wheels(layout, quiet)
    tag = f"{images.IMAGE_REPOSITORY}:bench-{time.time_ns()}"
    command = ["docker", "build", "--quiet", "--file", str(layout.dockerfile)]
    if no_cache:
        command.append("--no-cache")
    command += ["--tag", tag, str(layout.root)]
    started = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        env=dict(os.environ, DOCKER_BUILDKIT="0"),
    )
    elapsed = time.perf_counter() - started
    del base_id
    return elapsed, tag


def time_bootstrap() -> float:
    subprocess.run(
        ["docker", "image", "rm", images.BASE_IMAGE], check=False, capture_output=True
    )
    started = time.perf_counter()
    images.ensure_base_image(quiet)
    return time.perf_counter() - started


def time_steps(session: BashSession, steps: int) -> float:
    started = time.perf_counter()
    for index in range(steps):
        outcome = session.run(f"n={index}")
        if outcome.exit_status != 0:
            raise SystemExit(f"step failed: {outcome}")
    return (time.perf_counter() - started) / steps


def time_exec_per_step(container: str, steps: int) -> float:
    started = time.perf_counter()
    for index in range(steps):
        subprocess.run(
            ["docker", "exec", container, "bash", "-c", f"n={index}"], check=True
        )
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time --no-cache")
    parser.add_argument(
        "--bootstrap", action="store_true", help="also remake debian:trixie-slim"
    )
    args = parser.parse_args()
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    layout = SandboxLayout(ROOT)
    rows: list[tuple[str, str]] = []

    if args.bootstrap:
        rows.append(
            ("base image bootstrap (mmdebstrap + import)", f"{time_bootstrap():.1f} s")
        )
    tag = images.ensure_image(layout, progress=quiet).tag
    warm = []
    for _ in range(5):
        started = time.perf_counter()
        images.ensure_image(layout, progress=quiet)
        warm.append(time.perf_counter() - started)
    rows.append(("warm build (cached tag)", f"{statistics.median(warm) * 1000:.0f} ms"))

    extra_tags = []
    with tempfile.TemporaryDirectory() as scratch:
        copy = changed_copy(Path(scratch))
        seconds, built = time_build(copy, no_cache=False)
        extra_tags.append(built)
        rows.append(("incremental build (one server file changed)", f"{seconds:.1f} s"))
        if args.cold:
            seconds, built = time_build(copy, no_cache=True)
            extra_tags.append(built)
            rows.append(("cold build (--no-cache)", f"{seconds:.1f} s"))
    for extra in extra_tags:
        subprocess.run(
            ["docker", "image", "rm", extra], check=False, capture_output=True
        )

    ready = []
    for _ in range(args.starts):
        with ServerContainer(tag, ENV_DEFAULTS, ContainerOptions()) as server:
            ready.append(server.ready_seconds)
    rows.append(
        ("container start to healthy (median)", f"{statistics.median(ready):.2f} s")
    )
    rows.append(("container start to healthy (max)", f"{max(ready):.2f} s"))

    with ServerContainer(tag, ENV_DEFAULTS, ContainerOptions()) as server:
        with BashSession() as local:
            local_step = time_steps(local, args.steps)
        with BashSession(target=DockerTarget(server.id)) as remote:
            docker_step = time_steps(remote, args.steps)
        exec_step = time_exec_per_step(server.id, min(args.steps, 50))
    rows.append(("local target, per step", f"{local_step * 1000:.2f} ms"))
    rows.append(("docker target, per step", f"{docker_step * 1000:.2f} ms"))
    rows.append(("one `docker exec` per step (baseline)", f"{exec_step * 1000:.1f} ms"))
    rows.append(("docker target / local target", f"{docker_step / local_step:.1f}"))
    rows.append(
        ("docker target / docker exec per step", f"{docker_step / exec_step:.3f}")
    )

    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
