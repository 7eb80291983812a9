"""The Compose deployment of the sandbox: a project whose service is ``server``.

Steps marked ``when=compose`` (``docker compose logs --tail=50 server``,
``docker compose ps``) run on this machine against a Compose project made
from ``fixtures/compose/compose.yaml``. The project uses the test server image,
with qpc-server as the container's main process instead of a systemd unit.
The steps run in a local shell whose ``COMPOSE_PROJECT_NAME`` and
``COMPOSE_FILE`` point at the project, so ``docker compose`` finds it from any
directory.

The playbooks use the ``docker compose`` syntax (the Compose plugin). Where
only the old ``docker-compose`` program is installed, ``compose_tool`` returns
the reason a Compose run cannot happen, and ``runbook test`` reports those scenarios
as skipped with that reason.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .container import ENV_FILE, LABEL, OWNER_LABEL
from .docker import DockerError, docker, require_engine

#: Seconds the server may take from ``up`` until /health returns 200.
START_TIMEOUT = 60.0
_projects = itertools.count(1)


class ComposeUnavailable(DockerError, UsageError):
    """No Compose tool with the ``docker compose`` syntax is installed (exit 2)."""


def compose_tool() -> tuple[list[str] | None, str]:
    """Return the argv prefix of ``docker compose``, or None and the reason."""
    if shutil.which("docker") is not None:
        try:
            result = subprocess.run(
                ["docker", "compose", "version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            return ["docker", "compose"], ""
    reason = "no Compose tool with the 'docker compose' syntax is installed"
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        reason += (
            f" ({legacy} is the old docker-compose program, whose syntax the "
            "playbooks do not use)"
        )
    return None, reason + "; install the Compose plugin (docker-compose-plugin)"


@dataclass
class ComposeProject:
    """A started Compose project of the test server, removed by ``down``."""

    tool: list[str]
    directory: Path
    name: str
    image: str

    @classmethod
    def create(cls, fixtures: Path, image: str, tool: Sequence[str]) -> ComposeProject:
        """Copy the project files to a new directory; nothing is started yet."""
        directory = Path(tempfile.mkdtemp(prefix="runbook-compose-"))
        for name in ("compose.yaml", "entrypoint"):
            shutil.copy(fixtures / "compose" / name, directory / name)
        name = f"runbook-{os.getpid()}-{next(_projects)}"
        return cls(list(tool), directory, name, image)

    @property
    def environment(self) -> dict[str, str]:
        """The variables that let ``docker compose`` find this project."""
        return {
            "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_FILE": str(self.directory / "compose.yaml"),
            "QPC_IMAGE": self.image,
            "RUNBOOK_SANDBOX_OWNER": f"{socket.gethostname()}:{os.getpid()}",
        }

    def compose(self, *args: str, timeout: float = 120.0) -> str:
        """Run a Compose command for this project and return its output."""
        argv = [*self.tool, *args]
        try:
            result = subprocess.run(
                argv,
                cwd=self.directory,
                env={**os.environ, **self.environment},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise DockerError(
                f"'{' '.join(argv)}' took over {timeout:.0f} s"
            ) from error
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise DockerError(
                f"'{' '.join(argv)}' failed with exit status {result.returncode}: "
                + (message[-1] if message else "no output")
            )
        return result.stdout

    def up(self) -> float:
        """Start the project, wait until /health returns 200, and return the seconds."""
        require_engine()
        started = time.monotonic()
        self.compose("up", "--detach", timeout=180)
        deadline = started + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.healthy():
                return time.monotonic() - started
            time.sleep(0.2)
        raise DockerError(
            f"the Compose service 'server' of {self.name} did not respond on "
            f"/health within {START_TIMEOUT:.0f} s; its log ends with: "
            + self.compose("logs", "--tail=5", "server")[-400:]
        )

    @property
    def container(self) -> str:
        """The id of the service's container."""
        found = self.compose("ps", "-q", "server").split()
        if not found:
            raise DockerError(
                f"the Compose project {self.name} has no server container"
            )
        return found[0]

    def healthy(self) -> bool:
        """Return whether /health returns 200 through the mapped port."""
        try:
            port = self._metrics_port()
        except DockerError:
            return False
        try:
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def _metrics_port(self) -> str:
        mapped = docker("port", self.container, "9090/tcp").stdout.split()
        if not mapped:
            raise DockerError("port 9090 is not mapped")
        return mapped[0].rpartition(":")[2]

    def exec(self, command: str) -> str:
        """Run ``bash -c COMMAND`` as root in the server container."""
        return docker("exec", self.container, "bash", "-c", command).stdout

    def state(self) -> str:
        """Return the container's state and exit code, as ``exited 137``."""
        return docker(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
            self.container,
        ).stdout.strip()  # fmt: skip

    def down(self) -> None:
        """Remove the project's container, network and volume, and its directory."""
        try:
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _tls_missing(project: ComposeProject) -> str:
    project.exec(
        f"set -a; . {ENV_FILE}; set +a; "
        'rm -f "$QPC_TLS_CERT" "$QPC_TLS_KEY"; '
        f"sed -i 's/^QPC_PRODUCTION=.*/QPC_PRODUCTION=true/' {ENV_FILE}"
    )
    docker("restart", "--time", "5", project.container)
    return _wait_for_exit(project, "TLS cert or key missing")


def _process_killed(project: ComposeProject) -> str:
    docker("kill", "--signal", "KILL", project.container)
    return _wait_for_exit(project, None)


def _wait_for_exit(project: ComposeProject, pattern: str | None) -> str:
    from .faults import FaultNotEffective

    deadline = time.monotonic() + 20
    state = ""
    while time.monotonic() < deadline:
        state = project.state()
        if state.startswith("exited"):
            if pattern is None:
                return f"container {state}"
            log = docker("logs", "--tail", "20", project.container).stderr
            log += docker("logs", "--tail", "20", project.container).stdout
            for line in log.splitlines():
                if pattern in line:
                    return f"container {state}; log: {line.strip()}"
        time.sleep(0.2)
    raise FaultNotEffective(
        f"the Compose server did not stop as the fault should make it: {state}"
    )


#: Faults a Compose project supports, by the names of runbook.sandbox.faults.
COMPOSE_FAULTS: Mapping[str, Callable[[ComposeProject], str]] = {
    "tls-missing": _tls_missing,
    "process-killed": _process_killed,
}

#: Labels every Compose sandbox container carries (set in compose.yaml).
LABELS = (LABEL, OWNER_LABEL)
