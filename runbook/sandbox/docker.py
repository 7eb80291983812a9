"""Run the docker command line, with errors that name what failed and the fix."""

from __future__ import annotations

import shutil
import subprocess

from ..errors import RunbookError


class DockerError(RunbookError):
    """The Docker engine or a docker command failed."""


def docker(
    *args: str,
    check: bool = True,
    timeout: float | None = 120.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and return the completed process (text output)."""
    executable = shutil.which("docker")
    if executable is None:
        raise DockerError(
            "the docker command is not installed; the sandbox needs a Docker "
            "engine (apt-get install docker.io)"
        )
    try:
        result = subprocess.run(
            [executable, *args],
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=timeout,
            input=input,
        )
    except subprocess.TimeoutExpired as error:
        raise DockerError(
            f"'docker {_describe(args)}' did not finish within {timeout:.0f} s"
        ) from error
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or "no output"
        if "Cannot connect to the Docker daemon" in message:
            raise DockerError(
                f"{message}; start the Docker engine (systemctl start docker) "
                "and check 'docker info'"
            )
        raise DockerError(
            f"'docker {_describe(args)}' failed (exit status "
            f"{result.returncode}): {message}"
        )
    return result


def docker_text(*args: str, timeout: float | None = 120.0) -> str:
    """Run ``docker ARGS`` and return its standard output, stripped."""
    return docker(*args, timeout=timeout).stdout.strip()


def _describe(args: tuple[str, ...]) -> str:
    shown = " ".join(args)
    return shown if len(shown) <= 80 else shown[:79] + "…"


def require_engine() -> str:
    """Return the engine's version; raise DockerError when no engine responds."""
    result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    version = result.stdout.strip()
    if result.returncode != 0 or not version:
        message = (result.stderr or result.stdout).strip() or "no output"
        raise DockerError(
            f"the Docker engine is not reachable ('docker info' failed: "
            f"{message.splitlines()[-1]}); start it (systemctl start docker) or "
            "point DOCKER_HOST at a running engine"
        )
    return version
