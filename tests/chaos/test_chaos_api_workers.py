"""``kill -9`` of one API worker mid-upload and mid-query, with ``API_WORKERS=2``.

A real ``python -m serving`` process runs two uvicorn workers. For each fault the test
opens a raw connection, starts an upload (part of the body sent) or a slow query, finds
the worker holding that very connection (the socket's inode, among the API process's
children: never a process found by name) and SIGKILLs it. Proven each time:

- the other worker keeps answering at once (fresh connections: /health and a query);
- uvicorn replaces the dead worker;
- no partial artifact is ever visible: every listed artifact is a complete upload whose
  download has its size and SHA-256, and no killed upload appears;
- no query job stays ``running`` past the reaper (``mark_stuck_jobs_failed``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import secrets
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from shared.control.db import session_scope
from shared.control.models import QueryJobRow
from shared.housekeeping import ACTIVE_STATUSES, mark_stuck_jobs_failed
from shared.settings import Settings
from tests.chaos.chaos_support import agent_setup, api_env, api_process, children, record, scale
from tests.conftest import publish_table
from tests.e2e.platform import wait_until
from tests.serving.artifact_support import multipart_head, multipart_tail

pytestmark = [pytest.mark.e2e]

TABLE = "demo.chaos.numbers"
UPLOAD_BYTES = 4 * 1024 * 1024
# A query that runs for seconds: hash() has no range statistics, so nothing prunes the join.
SLOW_SQL = (f"SELECT count(*) FROM {TABLE} a, {TABLE} b, {TABLE} c WHERE c.id < 20 "
            "AND hash(a.id * 7919 + b.id + c.id) % 1000003 = 7")


def _hex_port(field: str) -> int:
    return int(field.rsplit(":", 1)[1], 16)


def _owner(api_pid: int, api_port: int, client_port: int) -> int | None:
    """The worker (child of the API process) holding the server side of our connection."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if _hex_port(f[1]) == api_port and _hex_port(f[2]) == client_port:
                    inodes.add(f"socket:[{f[9]}]")
    for pid in children(api_pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None


def _workers(api_pid: int) -> list[int]:
    """uvicorn's workers: the API process's children that serve (a multiprocessing helper does not)."""
    return [p for p in children(api_pid) if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def _raw_request(port: int, head: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head.encode() + body)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of one HTTP/1.1 answer with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = next(int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length")
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return int(lines[0].split()[1]), json.loads(body)


def _kill_owner(api_pid: int, port: int, sock: socket.socket) -> int:
    client_port = sock.getsockname()[1]
    pid = wait_until(lambda: _owner(api_pid, port, client_port), timeout_s=10, interval_s=0.02,
                     message="a worker holding the connection")
    os.kill(pid, signal.SIGKILL)
    return int(pid)


@dataclasses.dataclass
class Counts:
    uploads_killed: int = 0
    queries_killed: int = 0
    answered_by_other_worker: int = 0
    failed_answers_during_kill: int = 0
    jobs_reaped: int = 0
    partial_artifacts_visible: int = 0


def _other_worker_answers(url: str, agent: dict[str, str], counts: Counts) -> None:
    """Fresh connections right after the kill: the surviving worker answers every one."""
    for _ in range(3):
        with httpx.Client(base_url=url, timeout=30) as c:
            health = c.get("/health")
            query = c.post("/api/v1/queries/execute", headers=agent, json={"query": f"SELECT count(*) FROM {TABLE}"})
        ok = health.status_code == 200 and query.status_code == 200 and query.json()["rows"] == [[3000]]
        counts.answered_by_other_worker += ok
        counts.failed_answers_during_kill += not ok
        assert ok, (health.status_code, query.status_code, query.text[:300])


@pytest.mark.timeout(scale(600, 2400))
def test_killing_a_worker_mid_upload_and_mid_query(tmp_path: Path) -> None:
    kills = scale(1, 20)
    home = tmp_path / "home"
    env = api_env(home, f"sqlite:///{home / 'control.db'}", API_WORKERS="2", QUERY_TIMEOUT_S="120",
                  QUERY_MAX_TIMEOUT_S="300")
    publish_table(home / "served", TABLE, "SELECT range AS id FROM range(3000)")
    rng = random.Random(20261206)  # noqa: S311 - reproducible fault points
    counts = Counts()
    with api_process(env, tmp_path / "api.log") as api:
        wait_until(lambda: len(_workers(api.proc.pid)) == 2, timeout_s=60, message="two workers")
        _, agent, _ = agent_setup(api.url, [TABLE])
        auth = agent["Authorization"]
        complete: dict[str, str] = {}  # name -> sha256 of uploads that finished
        job_ids: list[str] = []
        for i in range(kills):
            before = set(_workers(api.proc.pid))
            # Mid-upload: headers and part of a 4 MB file sent, the rest never comes.
            boundary = secrets.token_hex(8)
            data = rng.randbytes(UPLOAD_BYTES)
            head_part = multipart_head(boundary, {"name": f"killed-{i}"}, filename=f"killed-{i}.bin")
            body_len = len(head_part) + len(data) + len(multipart_tail(boundary))
            head = (f"POST /api/v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nAuthorization: {auth}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {body_len}\r\n\r\n")
            sock = _raw_request(api.port, head, head_part + data[: rng.randrange(1, UPLOAD_BYTES // 2)])
            try:
                time.sleep(rng.uniform(0.0, 0.3))
                killed = _kill_owner(api.proc.pid, api.port, sock)
            finally:
                sock.close()
            counts.uploads_killed += 1
            _other_worker_answers(api.url, agent, counts)
            # A complete upload right after, through whichever worker: it must be whole.
            full_data = rng.randbytes(rng.randrange(1, 256 * 1024))
            with httpx.Client(base_url=api.url, timeout=60) as c:
                r = c.post("/api/v1/artifacts", headers=agent, files={"file": (f"whole-{i}.bin", full_data)},
                           data={"name": f"whole-{i}"})
            assert r.status_code == 201, r.text
            complete[f"whole-{i}"] = hashlib.sha256(full_data).hexdigest()

            # Mid-query: a slow query answered 202 after wait_s (its job row is running), or still waiting.
            detached = i % 2 == 0
            payload = json.dumps({"query": SLOW_SQL, "wait_s": 0.3 if detached else 60, "timeout_s": 120}).encode()
            head = (f"POST /api/v1/queries/execute HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nAuthorization: {auth}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
            sock = _raw_request(api.port, head, payload)
            try:
                if detached:
                    status, answer = _read_response(sock)
                    assert status == 202, answer
                    job_ids.append(answer["job_id"])
                else:
                    time.sleep(rng.uniform(0.1, 0.8))
                _kill_owner(api.proc.pid, api.port, sock)
            finally:
                sock.close()
            counts.queries_killed += 1
            _other_worker_answers(api.url, agent, counts)
            wait_until(lambda: len(_workers(api.proc.pid)) == 2 and killed not in _workers(api.proc.pid),  # noqa: B023
                       timeout_s=60, message="uvicorn replacing the killed worker")
            assert set(_workers(api.proc.pid)) != before or len(before) == 2

        # No partial artifact is visible: exactly the complete uploads, each whole.
        with httpx.Client(base_url=api.url, timeout=60) as c:
            listed = c.get("/api/v1/artifacts", headers=agent, params={"limit": 500}).json()["items"]
            names = {a["name"]: a for a in listed}
            partial = [n for n in names if n.startswith("killed-")]
            counts.partial_artifacts_visible = len(partial)
            assert partial == []
            assert set(names) == set(complete)
            for name, art in names.items():
                content = c.get(f"/api/v1/artifacts/{art['id']}/content", headers=agent).content
                assert hashlib.sha256(content).hexdigest() == art["sha256"] == complete[name]
                assert len(content) == art["size"]

            # No job stays running past the reaper (run as if STUCK_JOB_MINUTES had passed).
            settings = Settings.from_env(env)
            later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=settings.dagster.stuck_run_minutes + 1)
            counts.jobs_reaped = mark_stuck_jobs_failed(settings, now=later).counts.get("query_jobs_failed", 0)
            with session_scope(settings.control_url) as s:
                active = s.scalars(select(QueryJobRow.id).where(QueryJobRow.status.in_(ACTIVE_STATUSES))).all()
            assert active == []
            for job_id in job_ids:
                state = c.get(f"/api/v1/queries/jobs/{job_id}", headers=agent)
                assert state.status_code == 200, state.text
                assert state.json()["status"] == "failed", state.json()
    assert counts.jobs_reaped >= len(job_ids)
    record("api_worker_kills", dataclasses.asdict(counts))
