"""The test server image and its containers: systemd, the unit, the tools, the cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook.sandbox import container as containers
from runbook.sandbox.image import context_hash
from runbook.sandbox.layout import SandboxLayout

ROOT = Path(__file__).resolve().parent.parent

PLAYBOOK_TOOLS = (
    "sqlcipher sqlite3 curl ss ip fuser killall ps top free iostat openssl nc rsync "
    "iptables findmnt dmesg journalctl systemctl sshd qpc-server qpc-client qpc-admin"
)


def _copy_layout(tmp_path: Path) -> SandboxLayout:
    root = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "fixtures",
        root / "fixtures",
        ignore=shutil.ignore_patterns("wheels", "__pycache__", "*.egg-info"),
    )
    shutil.copy(ROOT / "Dockerfile.testserver", root)
    return SandboxLayout(root)


def test_context_hash_changes_with_any_input(tmp_path: Path) -> None:
    layout = _copy_layout(tmp_path)
    first = context_hash(layout, "sha256:base")
    assert context_hash(layout, "sha256:base") == first
    assert context_hash(layout, "sha256:other-base") != first
    service = layout.fixtures / "image" / "qpc-server.service"
    service.write_text(service.read_text() + "\n# changed\n")
    changed = context_hash(layout, "sha256:base")
    assert changed != first
    (layout.fixtures / "image" / "qpc-init").chmod(0o644)
    assert context_hash(layout, "sha256:base") != changed


def test_context_hash_ignores_bytecode_caches(tmp_path: Path) -> None:
    layout = _copy_layout(tmp_path)
    first = context_hash(layout, "sha256:base")
    cache = layout.fixtures / "server" / "quicprochat" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert context_hash(layout, "sha256:base") == first


@pytest.mark.docker
def test_second_build_is_served_from_the_cache(testserver_image: str) -> None:
    from runbook.sandbox.image import ensure_image

    again = ensure_image(SandboxLayout(ROOT))
    assert again.tag == testserver_image
    assert not again.built


@pytest.mark.docker
def test_systemd_runs_the_server_unit_as_in_production(start_server) -> None:
    server = start_server()
    _, comm = server.exec("cat /proc/1/comm")
    assert comm.strip() == "systemd"
    assert server.unit_state("systemd-journald") == "active"
    assert server.unit_state("qpc-server") == "active"
    _, user = server.exec(
        'ps -o user=,group= -p "$(systemctl show -p MainPID --value qpc-server)"'
    )
    assert user.split() == ["qpc", "qpc"]
    _, mode = server.exec("stat -c '%a %U %G' /etc/quicprochat/qpc-server.env")
    assert mode.split() == ["640", "root", "qpc"]
    _, listing = server.exec("ls /var/lib/quicprochat")
    assert {"qpc.db", "blobs", "server-cert.der", "server-key.der"} <= set(
        listing.split()
    )
    journal = server.journal()
    assert "listening on udp 0.0.0.0:7000" in journal


@pytest.mark.docker
def test_image_has_playbook_tools(start_server) -> None:
    server = start_server()
    status, output = server.exec(
        f"for tool in {PLAYBOOK_TOOLS}; do command -v $tool >/dev/null "
        "|| echo missing: $tool; done",
        check=False,
    )
    assert status == 0
    assert "missing" not in output


@pytest.mark.docker
def test_container_secrets_unique_and_unlogged(
    start_server,
) -> None:
    first = start_server()
    second = start_server()
    assert first.db_key != second.db_key
    assert first.auth_token != second.auth_token
    _, journal = first.exec("journalctl --no-pager -o cat")
    assert first.db_key not in journal
    assert first.auth_token not in journal


@pytest.mark.docker
def test_cgroup_setup_matches_the_engine(docker_engine: None) -> None:
    version = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupVersion}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    setup = containers.cgroup_setup()
    assert setup.version == version
    assert (setup.namespace, setup.mode) == (
        ("private", "rw") if version == "2" else ("host", "ro")
    )


@pytest.mark.docker
def test_leftovers_of_a_killed_run_are_removed(docker_engine: None) -> None:
    owner = f"{os.uname().nodename}:999999999"  # no such process
    started = subprocess.run(
        [
            "docker", "run", "-d",
            "--label", f"{containers.LABEL}=1",
            "--label", f"{containers.OWNER_LABEL}={owner}",
            "debian:trixie-slim", "sleep", "600",
        ],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        removed = containers.remove_leftovers()
        assert started[:12] in {item[:12] for item in removed}
        inspect = subprocess.run(
            ["docker", "inspect", started], capture_output=True, check=False
        )
        assert inspect.returncode != 0
    finally:
        subprocess.run(
            ["docker", "rm", "-f", started], capture_output=True, check=False
        )


@pytest.mark.docker
def test_kept_and_live_containers_are_not_leftovers(docker_engine: None) -> None:
    live_owner = f"{os.uname().nodename}:{os.getpid()}"
    ids = []
    try:
        for labels in (
            [f"{containers.OWNER_LABEL}={live_owner}"],
            [f"{containers.OWNER_LABEL}=gone:1", f"{containers.KEEP_LABEL}=1"],
        ):
            command = ["docker", "run", "-d", "--label", f"{containers.LABEL}=1"]
            for label in labels:
                command += ["--label", label]
            command += ["debian:trixie-slim", "sleep", "600"]
            ids.append(
                subprocess.run(
                    command, capture_output=True, text=True, check=True
                ).stdout.strip()
            )
        removed = containers.remove_leftovers()
        assert not {item[:12] for item in removed} & {item[:12] for item in ids}
    finally:
        for container in ids:
            subprocess.run(
                ["docker", "rm", "-f", container], capture_output=True, check=False
            )
