"""Stop the control database (PostgreSQL) for 10 s under load.

A real API process runs over a private PostgreSQL cluster (never the machine's shared
server) while four clients loop: agent queries, catalog reads, admin reads and /health.
The cluster is stopped for ``OUTAGE_S`` and started again. Proven:

- no answer is a 5xx other than 503, and every 503 is the one error shape naming the
  control database; the process never stops answering (no connection errors);
- after the restart every kind of request succeeds again on its own (no API restart);
- every request that succeeded has its audit row: rows queued while the database was away
  are written once it is back, none is dropped.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.chaos.chaos_support import Request, agent_setup, api_env, api_process, private_postgres, record, request_loops
from tests.conftest import publish_table
from tests.e2e.platform import wait_until
from tests.serving.helpers import assert_error

pytestmark = [pytest.mark.e2e]

OUTAGE_S = 10.0
TABLE = "demo.chaos.items"


@pytest.mark.timeout(300)
def test_control_db_down_for_10s_answers_503_and_recovers(tmp_path: Path) -> None:
    try:
        pg_cm = private_postgres()
        pg = pg_cm.__enter__()
    except FileNotFoundError as e:
        pytest.skip(f"no PostgreSQL binaries to run a private cluster: {e}")
    try:
        engine = sa.create_engine(pg.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE control"))
        engine.dispose()
        control_url = pg.url.rsplit("/", 1)[0] + "/control"
        home = tmp_path / "home"
        env = api_env(home, control_url)
        publish_table(home / "served", TABLE, "SELECT range AS id, 'v' || range AS name FROM range(100)")
        with api_process(env, tmp_path / "api.log") as api:
            admin, agent, agent_id = agent_setup(api.url, [TABLE])
            clients: dict[str, Request] = {
                "query": ("POST", "/api/v1/queries/execute", agent, {"query": f"SELECT count(*) FROM {TABLE}"}),
                "catalog": ("GET", "/api/v1/data/tables", agent, None),
                "admin": ("GET", "/api/v1/admin/swarms", admin, None),
                "health": ("GET", "/health", {}, None),
            }
            with request_loops(api.url, clients, timeout_s=30, pause_s=0.05) as log:
                time.sleep(2.0)
                down_at = time.monotonic()
                pg.stop()
                time.sleep(OUTAGE_S)
                pg.start()
                up_at = time.monotonic()

                def recovered() -> bool:
                    recent = [e for e in log if e[1] > time.monotonic() - 1.0]
                    return {e[0] for e in recent if e[2] == 200} == set(clients)

                wait_until(recovered, timeout_s=30, message="every kind of request answering 200 again")
                time.sleep(1.0)
            recovered_s = next((e[1] for e in log if e[1] > up_at and e[2] == 200 and e[0] == "admin"), up_at) - up_at

            statuses = collections.Counter((e[0], e[2]) for e in log)
            broken = [(e[0], e[2], e[3] if isinstance(e[3], str) else e[3].text[:300]) for e in log
                      if e[2] == -1 or (e[2] >= 500 and e[2] != 503)]
            assert not broken, f"crashes or 5xx other than 503: {broken[:5]}\n{api.tail()}"
            unavailable = [e for e in log if e[2] == 503]
            for _name, _t, _status, r in unavailable:
                error = assert_error(r, 503)
                assert "control database" in error["message"], error
            assert unavailable, f"no request needed the control database during the outage: {statuses}"
            during = [e for e in log if down_at + 2 < e[1] < up_at]
            assert any(e[0] == "health" and e[2] == 200 for e in during), "/health must answer while the database is away"

            # Every request that succeeded was audited (the writer keeps rows until the database is back).
            succeeded = collections.Counter(e[0] for e in log if 200 <= e[2] < 400 and e[0] in ("query", "catalog"))

            def audited() -> collections.Counter[str] | None:
                eng = sa.create_engine(control_url.replace("postgresql://", "postgresql+psycopg://"))
                try:
                    with eng.connect() as conn:
                        rows = conn.execute(sa.text(
                            "SELECT endpoint, count(*) FROM audit_log WHERE token_id = :t AND status_code < 400 "
                            "GROUP BY endpoint"), {"t": agent_id}).all()
                finally:
                    eng.dispose()
                by_path = {str(p): int(n) for p, n in rows}
                got = collections.Counter({"query": by_path.get("/api/v1/queries/execute", 0),
                                           "catalog": by_path.get("/api/v1/data/tables", 0)})
                return got if got == succeeded else None

            try:
                wait_until(audited, timeout_s=20, interval_s=1.0, message="an audit row for every successful request")
            except AssertionError as e:
                raise AssertionError(f"{e}; client saw {dict(succeeded)} successes") from None
    finally:
        pg_cm.__exit__(None, None, None)
    record("control_db_outage", {"outage_s": OUTAGE_S, "requests": len(log), "answered_503": len(unavailable),
                                 "server_errors_other_than_503": 0, "succeeded_requests_audited": sum(succeeded.values()),
                                 "audit_rows_lost": 0, "recovered_s": round(recovered_s, 2)})
