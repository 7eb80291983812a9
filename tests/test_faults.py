"""Every fault in runbook.sandbox.faults, injected into a real test server container.

Each test starts a container with the options the fault needs, applies the
fault (which waits for its own proof) and then checks the effect a second
way, as an operator would notice it: the unit's state in systemd, the
journal, /health, /metrics, df, and a QUIC client on the host that connects
through the mapped UDP port.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Callable

import pytest
from quicprochat.client import CannotConnect, Client, RequestRejected, fingerprint

from runbook.sandbox.container import (
    DATA_DIR,
    ENV_FILE,
    QUIC_PORT,
    ContainerOptions,
    ServerContainer,
)
from runbook.sandbox.docker import docker_text
from runbook.sandbox.faults import FAULTS, FaultNotEffective, UnknownFault, get_fault

#: Seconds to wait for a crash-looping unit to be seen between two starts.
DOWN_TIMEOUT = 10.0


def host_client(
    server: ServerContainer, user: str = "operator", timeout: float = 3.0
) -> Client:
    """Return a client on the host that connects through the mapped UDP port."""
    return Client(
        host="127.0.0.1",
        port=server.ports[QUIC_PORT],
        token=server.auth_token,
        user=user,
        insecure=True,
        timeout=timeout,
    )


def unit_status(server: ServerContainer) -> dict[str, str]:
    """Return systemd's view of qpc-server, read in one call so the fields agree."""
    _, output = server.exec(
        "systemctl show -p ActiveState -p SubState -p Result "
        "-p ExecMainCode -p ExecMainStatus qpc-server"
    )
    status = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        status[key] = value
    return status


def wait_until_down(server: ServerContainer) -> dict[str, str]:
    """Return the unit's status once it is not active.

    A unit that fails at start is restarted every 2 s (Restart=on-failure),
    and is "active" for the moment each new process runs.
    """
    deadline = time.monotonic() + DOWN_TIMEOUT
    while True:
        status = unit_status(server)
        if status["ActiveState"] != "active":
            return status
        if time.monotonic() >= deadline:
            pytest.fail(f"qpc-server stayed active for {DOWN_TIMEOUT:.0f} s: {status}")
        time.sleep(0.2)


def health_answers(server: ServerContainer) -> bool:
    try:
        status, _ = server.http_get("/health", timeout=2.0)
    except OSError:
        return False
    return status == 200


def journal(server: ServerContainer) -> str:
    return server.journal(lines=500)


def assert_down_with(server: ServerContainer, exit_status: int, line: str) -> None:
    """Assert that the server exits at start with ``exit_status`` and logs ``line``."""
    status = wait_until_down(server)
    assert status["Result"] == "exit-code", status
    assert status["ExecMainStatus"] == str(exit_status), status
    assert line in journal(server)
    assert not health_answers(server)


# --- one independent check per fault -------------------------------------------


def check_disk_full(server: ServerContainer) -> None:
    _, percent = server.exec(f"df --output=pcent {DATA_DIR} | tail -n 1")
    assert percent.strip() == "100%"
    # The proof's qpc-client call created the user "operator". A login as a
    # new user would have to insert a row, which a full disk may refuse.
    with host_client(server) as client:
        with pytest.raises(RequestRejected, match="No space left on device"):
            client.enqueue("probe", os.urandom(8192), ttl_secs=3600)
        messages = client.fetch("seeded", limit=5)
    assert len(messages) == 5
    _, integrity = server.exec(f"qpc-admin --env-file {ENV_FILE} integrity", user="qpc")
    assert integrity.strip() == "ok"


def check_tls_missing(server: ServerContainer) -> None:
    assert_down_with(server, 2, "TLS cert or key missing")
    status, _ = server.exec(f"test -e {DATA_DIR}/server-cert.der", check=False)
    assert status == 1


def check_weak_token(server: ServerContainer) -> None:
    assert_down_with(
        server, 2, "production forbids an auth token shorter than 16 characters"
    )


def check_db_locked(server: ServerContainer) -> None:
    assert_down_with(server, 1, f"database is locked: {DATA_DIR}/qpc.db")
    assert server.unit_state("qpc-db-locker") == "active"


def check_db_corrupt(server: ServerContainer) -> None:
    assert_down_with(server, 1, "database unreadable (corrupt or wrong key)")
    status, output = server.exec(
        f"qpc-admin --env-file {ENV_FILE} integrity", check=False, user="qpc"
    )
    assert status == 1
    assert "database unreadable" in output


def check_port_in_use(server: ServerContainer) -> None:
    assert_down_with(server, 1, "cannot listen on udp 0.0.0.0:7000")
    _, sockets = server.exec("ss --udp --listening --numeric --processes")
    holders = [line for line in sockets.splitlines() if ":7000 " in line]
    assert len(holders) == 1, sockets
    assert '"nc"' in holders[0]


def check_process_killed(server: ServerContainer) -> None:
    status = unit_status(server)
    assert status["ActiveState"] == "failed", status
    assert status["Result"] == "signal", status
    assert status["ExecMainStatus"] == "9", status
    exit_status, _ = server.exec("pgrep -x qpc-server", check=False)
    assert exit_status == 1
    assert not health_answers(server)


def check_process_hung(server: ServerContainer) -> None:
    # systemd still reports the unit active, so only /health and a client can
    # detect the hang.
    assert server.unit_state() == "active"
    _, state = server.exec(
        'ps -o stat= -p "$(systemctl show -p MainPID --value qpc-server)"'
    )
    assert state.strip().startswith("T")
    started = time.monotonic()
    with pytest.raises(OSError) as raised:
        server.http_get("/health", timeout=2.0)
    assert "timed out" in str(raised.value)
    assert time.monotonic() - started >= 1.9
    with (
        host_client(server, timeout=1.0) as client,
        pytest.raises(CannotConnect, match="no QUIC handshake"),
    ):
        client.ping()


def check_oom(server: ServerContainer) -> None:
    status = unit_status(server)
    assert status["ActiveState"] == "failed", status
    # Under cgroup v2 systemd detects the OOM kill and reports Result=oom-kill.
    # Under v1 it reports only the signal.
    assert status["Result"] in ("signal", "oom-kill"), status
    assert status["ExecMainStatus"] == "9", status
    limit = docker_text("inspect", "--format", "{{.HostConfig.Memory}}", server.id)
    assert limit == str(256 << 20)
    _, memory = server.exec("qpc-fault memory")
    assert memory.startswith(f"limit={256 << 20} "), memory


def check_connection_flood(server: ServerContainer) -> None:
    hits = server.metric("rate_limit_hit_total")
    assert hits is not None
    assert hits > 0
    # The flood came from 127.0.0.1 inside the container, so that address is
    # still over the limit, while the host's connections arrive from the
    # Docker bridge's gateway and are not.
    status, output = server.exec(
        "qpc-client --server 127.0.0.1:7000 --insecure --timeout 3 ping", check=False
    )
    assert status == 1, output
    assert "connection rate limit exceeded" in output
    with host_client(server) as client:
        assert client.ping() == {"ok": True}


def check_cert_expiring(server: ServerContainer) -> None:
    cert = f"{DATA_DIR}/server-cert.der"
    in_30_days, _ = server.exec(
        f"openssl x509 -inform DER -in {cert} -noout -checkend {30 * 86400}",
        check=False,
    )
    assert in_30_days == 1
    now, _ = server.exec(
        f"openssl x509 -inform DER -in {cert} -noout -checkend 0", check=False
    )
    assert now == 0
    assert server.unit_state() == "active"
    assert "TLS certificate expires within 30 days" in journal(server)
    with host_client(server) as client:
        assert client.ping() == {"ok": True}


def check_large_queue(server: ServerContainer) -> None:
    stats = server.admin_json("stats")
    assert stats["expired"] == 20_000
    assert stats["unexpired"] == 500
    assert server.metric("delivery_queue_depth") == 20_500
    assert "expired-message cleanup is off" in journal(server)


LEAKED = "/var/lib/qpc-faults/leaked"


def check_token_leaked(server: ServerContainer) -> None:
    assert "auth_login_success user=intruder" in journal(server)
    _, mode = server.exec(f"stat -c %a:%U {LEAKED}/auth-token")
    assert mode.strip() == "600:root"
    with host_client(server) as client:
        messages = client.fetch("operator", peek=True)
    assert [base64.b64decode(m["payload_b64"]) for m in messages] == [
        b"sent with a leaked token"
    ]


def check_tls_key_leaked(server: ServerContainer) -> None:
    _, leaked = server.exec(
        f"openssl x509 -inform DER -in {LEAKED}/server-cert.der -noout "
        "-fingerprint -sha256"
    )
    with host_client(server) as client:
        presented = fingerprint(client.peer_certificate())
    assert leaked.strip().endswith("=" + presented)


def check_db_key_leaked(server: ServerContainer) -> None:
    stats = server.admin_json("stats")
    assert (stats["users"], stats["key_packages"], stats["total"]) == (3, 3, 203)
    _, mode = server.exec(f"stat -c %a:%U {LEAKED}/db-key")
    assert mode.strip() == "600:root"


def check_opaque_setup_leaked(server: ServerContainer) -> None:
    _, password = server.exec("cat /var/lib/qpc-faults/opaque-password-alice")
    with host_client(server) as client:
        client.login_with_password("alice", password.strip())
        with pytest.raises(RequestRejected, match="wrong password"):
            client.login_with_password("alice", "not her password")
    status, _ = server.exec(
        f"cmp {LEAKED}/opaque-server-setup.bin {DATA_DIR}/opaque-server-setup.bin",
        check=False,
    )
    assert status == 0


CHECKS: dict[str, Callable[[ServerContainer], None]] = {
    "disk-full": check_disk_full,
    "tls-missing": check_tls_missing,
    "weak-token": check_weak_token,
    "db-locked": check_db_locked,
    "db-corrupt": check_db_corrupt,
    "port-in-use": check_port_in_use,
    "process-killed": check_process_killed,
    "process-hung": check_process_hung,
    "oom": check_oom,
    "connection-flood": check_connection_flood,
    "cert-expiring": check_cert_expiring,
    "large-queue": check_large_queue,
    "token-leaked": check_token_leaked,
    "tls-key-leaked": check_tls_key_leaked,
    "db-key-leaked": check_db_key_leaked,
    "opaque-setup-leaked": check_opaque_setup_leaked,
}


# --- tests ----------------------------------------------------------------------


def test_every_fault_has_a_check() -> None:
    assert set(CHECKS) == set(FAULTS)


@pytest.mark.docker
@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_takes_effect(
    name: str, start_server: Callable[..., ServerContainer]
) -> None:
    fault = FAULTS[name]
    server = start_server(fault.options)
    started = time.monotonic()

    evidence = fault.apply(server)

    assert evidence
    assert time.monotonic() - started < 30
    CHECKS[name](server)


@pytest.mark.docker
def test_oom_proof_rejects_a_plain_sigkill(
    start_server: Callable[..., ServerContainer],
) -> None:
    oom = FAULTS["oom"]
    server = start_server(oom.options)
    # The same proof after a SIGKILL that did not come from the OOM killer.
    killed_instead = dataclasses.replace(oom, name="process-killed")

    with pytest.raises(FaultNotEffective, match="never reached the limit"):
        killed_instead.apply(server)


def test_unknown_fault_lists_known_faults() -> None:
    with pytest.raises(UnknownFault) as raised:
        get_fault("nope")

    message = str(raised.value)
    assert message.startswith("unknown fault 'nope'; known faults: ")
    assert message.endswith(", ".join(sorted(FAULTS)))


@pytest.mark.docker
def test_qpc_fault_usage_and_list(
    start_server: Callable[..., ServerContainer],
) -> None:
    server = start_server(ContainerOptions(wait_ready=False))

    for command in ("qpc-fault", "qpc-fault nope"):
        status, output = server.exec(command, check=False)
        assert status == 2, command
        assert output.startswith("usage: qpc-fault list | qpc-fault memory"), output

    _, listing = server.exec("qpc-fault list")
    assert listing.split() == list(FAULTS)

    # Without a memory limit the oom fault would fill the host's memory.
    status, output = server.exec("qpc-fault oom", check=False)
    assert status == 2
    assert "no memory limit" in output
