"""The quicprochat test server in the real image, under systemd, seen from the host.

Clients connect through the container's mapped UDP port and read /metrics and
/health through its mapped TCP port, as an operator's tools would. Inside the
container, the checks use what the playbook uses: systemctl, journalctl,
sqlite3, sqlcipher and qpc-admin.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import Callable

import pytest
from quicprochat.client import Client, RequestRejected, TlsOptions, flood

from runbook.sandbox.container import (
    DATA_DIR,
    ENV_FILE,
    QUIC_PORT,
    ContainerOptions,
    ServerContainer,
)
from runbook.sandbox.docker import docker

pytestmark = pytest.mark.docker

StartServer = Callable[..., ServerContainer]

DB_PATH = f"{DATA_DIR}/qpc.db"
#: Seconds to wait for something the server does in the background.
WAIT_TIMEOUT = 10.0


def host_client(
    server: ServerContainer, user: str = "alice", token: str | None = None
) -> Client:
    """Return a client on the host that connects through the mapped UDP port."""
    return Client(
        host="127.0.0.1",
        port=server.ports[QUIC_PORT],
        token=server.auth_token if token is None else token,
        user=user,
        insecure=True,
        timeout=3.0,
    )


def metric(server: ServerContainer, name: str) -> float:
    value = server.metric(name)
    assert value is not None, f"{name} is missing from /metrics"
    return value


def journal(server: ServerContainer) -> str:
    """Return every journal line of the container, from every unit."""
    _, output = server.exec("journalctl --no-pager -o cat")
    return output


def wait_for(description: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not check():
        if time.monotonic() >= deadline:
            pytest.fail(f"{description} within {WAIT_TIMEOUT:.0f} s")
        time.sleep(0.2)


def sqlcipher(server: ServerContainer, key: str, sql: str) -> tuple[int, str]:
    """Run sqlcipher on the database as user qpc, with the key on stdin, not argv."""
    result = docker(
        "exec", "-i", "--user", "qpc", server.id, "sqlcipher", DB_PATH,
        input=f"PRAGMA key = '{key}';\n{sql}\n",
        check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


# --- QUIC from the host ----------------------------------------------------------


def test_login_with_right_and_wrong_token(
    start_server: StartServer,
) -> None:
    server = start_server()
    successes = metric(server, "auth_login_success_total")
    failures = metric(server, "auth_login_failure_total")

    with host_client(server, user="alice") as client:
        client.login()
    with (
        host_client(server, user="mallory", token="wrong-token-0123456789") as client,
        pytest.raises(RequestRejected, match="bad token"),
    ):
        client.login()

    assert metric(server, "auth_login_success_total") == successes + 1
    assert metric(server, "auth_login_failure_total") == failures + 1
    lines = journal(server)
    assert "auth_login_success user=alice " in lines
    assert re.search(r"auth_login_failure ip=\S+ user=mallory", lines)


def test_enqueue_with_ttl_and_fetch(start_server: StartServer) -> None:
    server = start_server()
    assert metric(server, "delivery_queue_depth") == 0

    with host_client(server) as client:
        sent_at = time.time()
        first = client.enqueue("bob", b"expires in an hour", ttl_secs=3600)
        second = client.enqueue("bob", b"never expires")
        assert metric(server, "delivery_queue_depth") == 2
        messages = client.fetch("bob")
        assert metric(server, "delivery_queue_depth") == 0
        assert client.fetch("bob") == []

    assert [message["id"] for message in messages] == [first, second]
    payloads = [message["payload_b64"] for message in messages]
    assert payloads == ["ZXhwaXJlcyBpbiBhbiBob3Vy", "bmV2ZXIgZXhwaXJlcw=="]
    assert abs(messages[0]["expires_at"] - (sent_at + 3600)) <= 5
    assert messages[1]["expires_at"] is None
    assert metric(server, "messages_enqueued_total") == 2


def test_blobs_stored_as_files(start_server: StartServer) -> None:
    server = start_server()
    data = os.urandom(5000)
    # Above QPC_INLINE_PAYLOAD_MAX (1024 bytes), a payload goes to a file too.
    payload = os.urandom(2048)

    with host_client(server) as client:
        blob_id = client.upload_blob(data)
        client.enqueue("bob", payload, ttl_secs=600)
        (message,) = client.fetch("bob", peek=True)

    assert re.fullmatch(r"[0-9a-f]{32}", blob_id)
    _, listing = server.exec(
        f"cd {DATA_DIR}/blobs && stat -c '%U %s' {blob_id} && sha256sum {blob_id}"
    )
    owner_and_size, checksum = listing.splitlines()
    assert owner_and_size == "qpc 5000"
    assert checksum.split()[0] == hashlib.sha256(data).hexdigest()
    _, count = server.exec(f"ls {DATA_DIR}/blobs | wc -l")
    assert count.strip() == "2"
    assert message["payload_b64"] is not None
    stats = server.admin_json("stats")
    assert stats["blobs"] == 2
    assert stats["blob_bytes"] == 5000 + 2048


def test_rate_limit_refuses_connections(start_server: StartServer) -> None:
    server = start_server(ContainerOptions(server_env={"QPC_RATE_LIMIT_PER_MIN": "10"}))
    assert metric(server, "rate_limit_hit_total") == 0

    result = asyncio.run(
        flood(
            "127.0.0.1",
            server.ports[QUIC_PORT],
            TlsOptions(insecure=True),
            connections=20,
            max_seconds=15,
            timeout=3,
        )
    )

    assert result.accepted <= 10, result
    assert result.refused >= 10, result
    assert metric(server, "rate_limit_hit_total") >= result.refused
    assert re.search(
        r"connection rate limit exceeded ip=\S+ limit_per_min=10", journal(server)
    )


# --- HTTP from the host ----------------------------------------------------------


def test_health_and_metrics_over_http(start_server: StartServer) -> None:
    server = start_server()

    status, body = server.http_get("/health")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}

    status, text = server.http_get("/metrics")
    assert status == 200
    samples = {line.split()[0] for line in text.splitlines() if line[:1] != "#"}
    for name in (
        "delivery_queue_depth",
        "rate_limit_hit_total",
        "auth_login_success_total",
        "auth_login_failure_total",
    ):
        assert name in samples


# --- the database ----------------------------------------------------------------


def test_database_is_encrypted(start_server: StartServer) -> None:
    server = start_server()

    status, output = server.exec(f"sqlite3 {DB_PATH} .tables", check=False)
    assert status == 1
    assert "file is not a database" in output

    status, output = sqlcipher(server, server.db_key, ".tables")
    assert status == 0, output
    assert {"users", "key_packages", "delivery_queue"} <= set(output.split())

    status, output = sqlcipher(server, "not-the-key", ".tables")
    assert status != 0
    assert "file is not a database" in output


def test_cleanup_deletes_expired_messages(start_server: StartServer) -> None:
    server = start_server(
        ContainerOptions(server_env={"QPC_CLEANUP_INTERVAL_SECS": "1"})
    )
    with host_client(server) as client:
        client.enqueue("carol", os.urandom(2048), ttl_secs=1)  # a blob file
        kept = client.enqueue("carol", b"kept", ttl_secs=3600)
    server.exec(
        f"qpc-admin --env-file {ENV_FILE} seed --expired 5 --unexpired 0", user="qpc"
    )

    wait_for(
        "the cleanup did not delete the 6 expired messages",
        lambda: server.admin_json("stats")["total"] == 1,
    )

    stats = server.admin_json("stats")
    assert stats["expired"] == 0
    assert stats["blobs"] == 0
    assert metric(server, "expired_messages_deleted_total") == 6
    assert "cleanup removed" in server.journal()
    with host_client(server) as client:
        assert [message["id"] for message in client.fetch("carol")] == [kept]


# --- systemd and the journal -----------------------------------------------------


def test_systemctl_stop_sends_sigterm(start_server: StartServer) -> None:
    server = start_server()

    started = time.monotonic()
    server.exec("systemctl stop qpc-server")
    seconds = time.monotonic() - started

    assert seconds < 5, "the stop should not wait for TimeoutStopSec"
    _, output = server.exec(
        "systemctl show -p ActiveState -p Result -p ExecMainCode -p ExecMainStatus "
        "qpc-server"
    )
    status = dict(line.split("=", 1) for line in output.split())
    assert status == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED: the process exited by itself
        "ExecMainStatus": "0",
    }
    lines = server.journal().splitlines()
    shutting_down = lines.index("INFO shutting down signal=SIGTERM")
    assert "INFO stopped" in lines[shutting_down:]


def test_redacted_logs_hide_user_names(start_server: StartServer) -> None:
    server = start_server(ContainerOptions(server_env={"QPC_REDACT_LOGS": "true"}))
    name = f"redact-{os.urandom(4).hex()}"

    with host_client(server, user=name) as client:
        client.login()
    with (
        host_client(server, user=f"{name}-wrong", token="wrong-token-0123") as client,
        pytest.raises(RequestRejected),
    ):
        client.login()

    lines = journal(server)
    assert "auth_login_success user=[redacted] ip=[redacted]" in lines
    assert "auth_login_failure ip=[redacted] user=[redacted]" in lines
    assert name not in lines


def test_secrets_stay_out_of_the_journal(start_server: StartServer) -> None:
    # Debug logging writes the most, so it is the strictest case.
    server = start_server(ContainerOptions(server_env={"QPC_LOG_LEVEL": "debug"}))
    wrong_token = server.auth_token[::-1]

    with host_client(server) as client:
        client.login()
        client.enqueue("bob", b"hello", ttl_secs=60)
        client.fetch("bob")
    with (
        host_client(server, token=wrong_token) as client,
        pytest.raises(RequestRejected),
    ):
        client.login()
    server.http_get("/metrics")
    server.exec("systemctl restart qpc-server")
    server.wait_ready()

    lines = journal(server)
    assert "auth_login_success user=alice" in lines
    assert "DEBUG enqueued id=1 to=bob" in lines
    assert server.auth_token not in lines
    assert wrong_token not in lines
    assert server.db_key not in lines
