"""Start the test server image as a container with systemd as PID 1.

Testcontainers creates and starts the container; runbook removes it (no
reaper container can run without a registry). Every container carries the
label ``org.runbook.sandbox`` and the id of the process that started it, so
the next start removes the leftovers of a run that was killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shlex
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..workdir import process_exists
from .docker import DockerError, docker, docker_text, require_engine

log = logging.getLogger(__name__)

LABEL = "org.runbook.sandbox"
OWNER_LABEL = "org.runbook.sandbox.owner"
KEEP_LABEL = "org.runbook.sandbox.keep"
ENV_FILE = "/etc/quicprochat/qpc-server.env"
DATA_DIR = "/var/lib/quicprochat"
QUIC_PORT = 7000
METRICS_PORT = 9090
SSH_PORT = 22
#: Seconds from `docker start` until /health returns 200.
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ContainerOptions:
    """The container settings a fault needs from the start."""

    #: Size of a tmpfs mounted on the data directory (e.g. "48m"); None: none.
    data_tmpfs_size: str | None = None
    #: Memory limit for the whole container (e.g. "192m"); None: no limit.
    memory_limit: str | None = None
    #: Settings written to the server's environment file over the defaults.
    server_env: Mapping[str, str] = field(default_factory=dict)
    #: Wait until /health returns 200 before start() returns.
    wait_ready: bool = True


class ServerContainer:
    """One test server container: start, exec, read logs and metrics, remove."""

    def __init__(
        self,
        image: str,
        defaults_env_file: Path,
        options: ContainerOptions | None = None,
        ssh_public_key: str | None = None,
        keep: bool = False,
        name: str | None = None,
    ) -> None:
        self.image = image
        self.options = options or ContainerOptions()
        self.keep = keep
        self.name = name
        self.ssh_public_key = ssh_public_key
        self.db_key = secrets.token_hex(32)
        self.auth_token = secrets.token_hex(24)
        self.server_env = read_env_file(defaults_env_file)
        self.server_env.update(self.options.server_env)
        self.server_env["QPC_DB_KEY"] = self.db_key
        self.server_env["QPC_AUTH_TOKEN"] = self.auth_token
        self._container: object | None = None
        self.id = ""
        self.ports: dict[int | str, int] = {}
        self.start_seconds = 0.0
        self.ready_seconds = 0.0

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> ServerContainer:
        try:
            from testcontainers.core.container import DockerContainer
        except ImportError as error:
            raise DockerError(
                "the sandbox needs testcontainers, which is not installed; "
                "install it with: python3 -m pip install 'runbook[sandbox]' "
                "(or pip install testcontainers)"
            ) from error

        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        remove_leftovers()
        started = time.monotonic()
        cgroup = cgroup_setup()
        labels = {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"}
        if self.keep:
            labels[KEEP_LABEL] = "1"
        kwargs: dict[str, Any] = {
            "labels": labels,
            "hostname": "qpc-sandbox",
            "cgroupns": cgroup.namespace,
            "stop_signal": "SIGRTMIN+3",
            # Root on a server host can read every process's open files
            # (fuser, lsof) and change the firewall (iptables). In a container
            # that takes these two capabilities, limited to its namespaces.
            "cap_add": ["SYS_PTRACE", "NET_ADMIN"],
        }
        if self.options.memory_limit:
            kwargs["mem_limit"] = self.options.memory_limit
            kwargs["memswap_limit"] = self.options.memory_limit
        container = DockerContainer(self.image, name=self.name, **kwargs)
        container.with_volume_mapping("/sys/fs/cgroup", "/sys/fs/cgroup", cgroup.mode)
        for path, options in _tmpfs_mounts(self.options).items():
            container.with_tmpfs_mount(path, options)
        container.ports.update(
            {
                f"{QUIC_PORT}/udp": ("127.0.0.1", None),  # type: ignore[dict-item]
                f"{METRICS_PORT}/tcp": ("127.0.0.1", None),  # type: ignore[dict-item]
                f"{SSH_PORT}/tcp": ("127.0.0.1", None),  # type: ignore[dict-item]
            }
        )
        container.with_copy_into_container(
            _format_env_file(self.server_env).encode(), ENV_FILE, 0o640
        )
        if self.ssh_public_key:
            container.with_copy_into_container(
                self.ssh_public_key.encode() + b"\n",
                "/root/.ssh/authorized_keys",
                0o600,
            )
        try:
            container.start()
        except Exception as error:  # docker SDK errors have no common base here
            with contextlib.suppress(Exception):
                container.stop()
            raise DockerError(f"cannot start {self.image}: {error}") from error
        self._container = container
        self.id = container.get_container_id()
        self._read_ports()
        self.start_seconds = time.monotonic() - started
        if self.options.wait_ready:
            self.wait_ready()
        self.ready_seconds = time.monotonic() - started
        log.info(
            "sandbox container %s ready in %.1f s", self.id[:12], self.ready_seconds
        )
        return self

    def stop(self) -> None:
        """Remove the container (unless it is kept)."""
        if not self.id or self.keep:
            return
        docker("rm", "--force", "--volumes", self.id, check=False, timeout=60)
        self.id = ""

    def __enter__(self) -> ServerContainer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- state -------------------------------------------------------------------

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until /health returns 200 through the mapped metrics port."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise DockerError(
                    f"sandbox container {self.id[:12]} stopped while booting; "
                    f"see 'docker logs {self.id[:12]}'"
                )
            try:
                status, _ = self.http_get("/health", timeout=1.0)
                if status == 200:
                    return
                last = f"/health answered {status}"
            except OSError as error:
                last = str(error)
            time.sleep(0.05)
        journal = self.journal(lines=20)
        raise DockerError(
            f"qpc-server in container {self.id[:12]} was not healthy after "
            f"{timeout:.0f} s ({last}); its journal ends with:\n{journal}"
        )

    def running(self) -> bool:
        result = docker(
            "inspect", "--format", "{{.State.Running}}", self.id, check=False
        )
        return result.stdout.strip() == "true"

    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET a path of the metrics server through the mapped port."""
        url = f"http://127.0.0.1:{self.ports[METRICS_PORT]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def metric(self, name: str) -> float | None:
        """Return the value of one sample without labels in /metrics, or None."""
        _, text = self.http_get("/metrics")
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if key == name:
                return float(value)
        return None

    # --- commands inside ----------------------------------------------------------

    def current_env(self) -> dict[str, str]:
        """Return the settings in the container's environment file now."""
        status, text = self.exec(f"cat {ENV_FILE}", check=False)
        return parse_env_text(text) if status == 0 else {}

    def exec(
        self,
        command: str,
        check: bool = True,
        timeout: float = 120.0,
        user: str | None = None,
    ) -> tuple[int, str]:
        """Run ``bash -c COMMAND`` in the container; return (status, output)."""
        args = ["exec"]
        if user:
            args += ["--user", user]
        result = docker(
            *args, self.id, "bash", "-c", command, check=False, timeout=timeout
        )
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise DockerError(
                f"in sandbox container {self.id[:12]}: {command!r} failed with exit "
                f"status {result.returncode}: {output.strip()[-2000:]}"
            )
        return result.returncode, output

    def journal(self, unit: str = "qpc-server", lines: int = 200) -> str:
        _, output = self.exec(
            f"journalctl --no-pager -o cat -u {unit} -n {lines}", check=False
        )
        return output

    def admin(self, *args: str) -> str:
        """Run qpc-admin with the server's environment file; return its output."""
        quoted = " ".join(shlex.quote(arg) for arg in args)
        _, output = self.exec(f"qpc-admin --env-file {ENV_FILE} {quoted}")
        return output

    def admin_json(self, *args: str) -> dict[str, object]:
        return json.loads(self.admin(*args))

    def unit_state(self, unit: str = "qpc-server") -> str:
        _, output = self.exec(f"systemctl is-active {unit}", check=False)
        return output.strip()

    def _read_ports(self) -> None:
        attributes = json.loads(docker_text("inspect", self.id))[0]
        mapped = attributes["NetworkSettings"]["Ports"] or {}
        for key, bindings in mapped.items():
            if bindings:
                port, _, protocol = key.partition("/")
                self.ports[int(port) if protocol == "tcp" else key] = int(
                    bindings[0]["HostPort"]
                )
        self.ports.setdefault(QUIC_PORT, self.ports.get(f"{QUIC_PORT}/udp", 0))


@dataclass(frozen=True)
class CgroupSetup:
    version: str
    namespace: str
    mode: str


def cgroup_setup() -> CgroupSetup:
    """How systemd as PID 1 gets its cgroups, for this engine's cgroup version.

    cgroup v1 (seen here): the host's cgroup namespace with /sys/fs/cgroup
    read-only. cgroup v2: a private cgroup namespace with /sys/fs/cgroup
    writable, so that systemd can make its own sub-groups. /run and /run/lock
    are tmpfs either way (see _tmpfs_mounts).
    """
    version = docker_text("info", "--format", "{{.CgroupVersion}}") or "1"
    if version == "2":
        return CgroupSetup(version, namespace="private", mode="rw")
    return CgroupSetup(version, namespace="host", mode="ro")


def remove_leftovers(everything: bool = False) -> list[str]:
    """Remove sandbox containers whose starting process on this host is gone.

    Kept containers (``--keep``) stay. So do containers started from another
    host (an engine shared through DOCKER_HOST), because this host cannot see
    their process. ``everything`` removes them all.
    """
    require_engine()
    listing = docker(
        "ps",
        "--all",
        "--filter",
        f"label={LABEL}",
        "--format",
        '{{.ID}}|{{.Label "' + OWNER_LABEL + '"}}|{{.Label "' + KEEP_LABEL + '"}}',
        check=False,
    )
    removed = []
    host = socket.gethostname()
    for line in listing.stdout.splitlines():
        container, owner, keep = (line.split("|") + ["", ""])[:3]
        owner_host, _, pid = owner.rpartition(":")
        other_host = owner_host != host
        live = not other_host and pid.isdigit() and process_exists(int(pid))
        if not everything and (keep.strip() == "1" or live or other_host):
            continue
        docker("rm", "--force", "--volumes", container, check=False, timeout=60)
        removed.append(container)
    if removed:
        log.info("removed %d leftover sandbox container(s)", len(removed))
    return removed


def _tmpfs_mounts(options: ContainerOptions) -> dict[str, str]:
    mounts = {"/run": "", "/run/lock": "", "/tmp": "size=256m"}
    if options.data_tmpfs_size:
        mounts[DATA_DIR] = f"size={options.data_tmpfs_size},mode=0750"
    return mounts


def read_env_file(path: Path) -> dict[str, str]:
    """Return the NAME=VALUE settings of an env file, comments left out."""
    return parse_env_text(path.read_text(encoding="utf-8"))


def parse_env_text(text: str) -> dict[str, str]:
    """Return the NAME=VALUE settings of an env file's text, comments left out."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _format_env_file(values: Mapping[str, str]) -> str:
    lines = ["# Written by runbook's sandbox for this container."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"
