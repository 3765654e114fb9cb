"""Bad input and faults: a dead source, refused credentials, a missing table, malformed partition keys."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared import partitions as sp
from shared.settings import Settings
from tests.conftest import free_port
from tests.orchestration.conftest import Source, current, failure_message, materialize, served_files, sync


@pytest.fixture
def seeded(source: Source, sync_settings: Settings):  # type: ignore[no-untyped-def]
    source.sql(f"CREATE TABLE {source.table('T')} (ID NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {source.table('T')} VALUES (1, 'a'), (2, 'b')")
    table = source.register("T")
    assert materialize(table, sync_settings).success
    return table, current(sync_settings, table), served_files(sync_settings, table)


def test_unreachable_source_fails_the_run_and_leaves_served_data(seeded, sync_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    table, before, files = seeded
    dead = free_port()  # nothing listens there
    result = materialize(table, sync_settings, port=dead, network_timeout_s=3)
    message = failure_message(result)
    assert "Snowflake source unreachable or credentials refused" in message
    assert f"127.0.0.1:{dead}" in message
    assert f"still version {before.version}" in message
    assert current(sync_settings, table) == before
    assert served_files(sync_settings, table) == files


class _RefusingLogin(BaseHTTPRequestHandler):
    """Answers every login the way Snowflake answers a wrong password."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"data": None, "code": "390100", "success": False,
                           "message": "Incorrect username or password was specified."}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingLogin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_wrong_credentials_fail_the_run_with_a_clear_message(seeded, sync_settings: Settings, refusing_port: int) -> None:  # type: ignore[no-untyped-def]
    table, before, files = seeded
    result = materialize(table, sync_settings, port=refusing_port, password="wrong", network_timeout_s=5)  # noqa: S106
    message = failure_message(result)
    assert "credentials refused" in message
    assert "Incorrect username or password" in message
    assert current(sync_settings, table) == before
    assert served_files(sync_settings, table) == files


def test_a_dropped_source_table_fails_clearly(seeded, source: Source, sync_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    table, before, _ = seeded
    source.sql(f"DROP TABLE {source.table('T')}")
    message = failure_message(materialize(table, sync_settings))
    assert f"{source.database}.S.T does not exist in the source" in message
    assert current(sync_settings, table) == before


def test_the_run_step_records_success_and_failure_on_the_status_row(seeded, source: Source,  # type: ignore[no-untyped-def]
                                                                    sync_settings: Settings) -> None:
    """Both outcomes are recorded where the step ends, with no sensor running (``dg.materialize``)."""
    from shared import status

    table, before, _ = seeded
    ok = status.read(sync_settings.control_url, [table.key])[table.key]
    assert (ok.last_run_status, ok.served_version, ok.stale) == ("succeeded", before.version, False)
    source.sql(f"DROP TABLE {source.table('T')}")
    result = materialize(table, sync_settings)
    assert not result.success
    row = status.read(sync_settings.control_url, [table.key])[table.key]
    assert (row.last_run_id, row.last_run_status) == (result.run_id, "failed")
    assert row.last_error is not None
    assert row.last_failure_at is not None
    assert ok.last_success_at is not None
    assert row.last_error.startswith("orchestration.sync.plan.SourceTableMissingError: ")
    assert f"{source.database}.S.T does not exist in the source" in row.last_error
    assert row.stale, "a missing source marks the served copy stale"
    assert row.served_version == before.version
    assert row.last_failure_at > ok.last_success_at
    assert not status.record_failure(sync_settings.control_url, [table.key], result.run_id, "late sensor report",
                                     row.last_failure_at), "the failure sensor's second report changes nothing"


@pytest.mark.parametrize(
    ("kind", "bad", "hint"),
    [
        ("daily", "2025-13-01", "YYYY-MM-DD"), ("daily", "2025-1-2", "YYYY-MM-DD"), ("daily", "yesterday", "YYYY-MM-DD"),
        ("hourly", "2025-01-02", "YYYY-MM-DD-HH:00"), ("hourly", "2025-01-02-05:30", "YYYY-MM-DD-HH:00"),
        ("monthly", "2025-02-15", "YYYY-MM-01"), ("daily", "2024-12-31", "from 2025-01-01"),
        ("daily", "2999-01-01", "outside the partitions"),
    ],
)
def test_malformed_partition_keys_are_rejected_with_the_valid_format(source: Source, kind: str, bad: str, hint: str) -> None:
    table = source.register("T", partitioning={"kind": kind, "column": "TS", "start": "2025-01-01"})
    with pytest.raises(sp.PartitionKeyError, match="partition key") as err:
        sp.validate_partition_key(table, bad)
    assert hint in str(err.value)
    assert repr(bad) in str(err.value)


def test_static_keys_name_the_valid_values(source: Source) -> None:
    table = source.register("T", partitioning={"kind": "static", "column": "R", "values": ["eu", "us"]})
    with pytest.raises(sp.PartitionKeyError, match="one of: eu, us"):
        sp.validate_partition_key(table, "apac")
    assert sp.validate_partition_key(table, "eu").value == "eu"


def test_the_engine_refuses_a_malformed_key_before_touching_anything(source: Source, sync_settings: Settings) -> None:
    table = source.register("T", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    with pytest.raises(sp.PartitionKeyError, match="YYYY-MM-DD"):
        sync(table, sync_settings, source, partition_keys=["2025/01/02"])
    with pytest.raises(sp.PartitionKeyError, match="name a partition key"):
        sync(table, sync_settings, source)
    assert current(sync_settings, table) is None
