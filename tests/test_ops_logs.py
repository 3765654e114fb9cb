"""Log lines: JSON or text, the request id on every line, quiet libraries, no secrets."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator

import pytest
import sqlglot

from shared import logs
from shared.settings import ObservabilitySettings, Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _settings(fmt: str, level: str = "info") -> Settings:
    base = Settings.from_env({"LOG_LEVEL": level})
    return dataclasses.replace(base, observability=ObservabilitySettings(log_format=fmt))


def test_json_lines_carry_the_request_id_and_extra_fields(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure(_settings("json"), stream=out)
    token = logs.request_id.set("req-123")
    try:
        logging.getLogger("agents_data.access").info("GET /x 200", extra={"route": "/x", "status": 200})
    finally:
        logs.request_id.reset(token)
    logging.getLogger("agents_data.other").info("outside any request")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "msg", "request_id", "route", "status")} == {
        "level": "info", "logger": "agents_data.access", "msg": "GET /x 200", "request_id": "req-123",
        "route": "/x", "status": 200}
    assert "request_id" not in second
    assert first["ts"].endswith("+00:00")


def test_text_lines_are_readable(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure(_settings("text"), stream=out)
    token = logs.request_id.set("req-9")
    try:
        logging.getLogger("agents_data.access").info("GET /x 200 1.0ms", extra={"route": "/x", "rows": 3})
    finally:
        logs.request_id.reset(token)
    line = out.getvalue().strip()
    assert " INFO agents_data.access [req-9]: GET /x 200 1.0ms rows=3" in line
    assert "route=" not in line  # already in the message


def test_the_parser_fallback_and_httpx_lines_go_to_debug(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure(_settings("text"), stream=out)
    sqlglot.parse_one("EXPLAIN ANALYZE SELECT 1", read="duckdb")  # sqlglot warns: falls back to a Command
    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1/graphql "HTTP/1.1 200 OK"')
    logging.getLogger("snowflake.connector.connection").warning("connector chatter")
    logging.getLogger("agents_data.api").warning("something is actually wrong")
    logging.getLogger("sqlglot").error("a library error still shows")
    text = out.getvalue()
    assert "Falling back" not in text
    assert "HTTP Request" not in text
    assert "chatter" not in text
    assert "something is actually wrong" in text
    assert "a library error still shows" in text

    debug = io.StringIO()
    logs.configure(_settings("text", "debug"), stream=debug)
    sqlglot.parse_one("EXPLAIN ANALYZE SELECT 2", read="duckdb")
    assert any("DEBUG sqlglot" in line and "Falling back" in line for line in debug.getvalue().splitlines())


@pytest.mark.parametrize(("line", "secret"), [
    ("Authorization: Bearer abc.def-ghi_123", "abc.def-ghi_123"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl seen", "eyJhbGciOiJIUzI1NiJ9"),
    ("connecting to postgresql://svc:s3cr3t-pw@db:5432/control", "s3cr3t-pw"),
    ("GET https://bucket.s3.amazonaws.com/a.csv?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA1", "deadbeef"),
    ("GET /api/v1/data/tables/t/sample?where=ssn%3D123&size=5", "ssn%3D123"),
    ("settings: password=hunter2, user=x", "hunter2"),
    ('{"admin_password": "hunter3"}', "hunter3"),
    ("SNOWFLAKE_PASSWORD=hunter4", "hunter4"),
])
def test_scrub_removes_credentials_and_query_values(line: str, secret: str) -> None:
    cleaned = logs.scrub(line)
    assert secret not in cleaned
    assert logs.REDACTED in cleaned


def test_scrub_keeps_ordinary_text() -> None:
    line = "GET /api/v1/data/tables/{table} 200 3.1ms rows=10 tables=demo.public.orders"
    assert logs.scrub(line) == line


def test_a_secret_in_a_formatted_line_or_traceback_never_reaches_the_stream(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure(_settings("json"), stream=out)
    try:
        raise RuntimeError("login failed for postgresql://u:topsecret@h/db")
    except RuntimeError:
        logging.getLogger("agents_data.api").exception("with %s", "Bearer tok-very-secret")
    assert "topsecret" not in out.getvalue()
    assert "tok-very-secret" not in out.getvalue()


def test_prefixed_log_names_the_request_on_every_line() -> None:
    seen: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            seen.append(msg)

        def warning(self, msg: str) -> None:
            seen.append(msg)

    log = logs.PrefixedLog(Log(), "[request_id=r1] ")
    log.info("starts")
    log.warning("careful")
    assert seen == ["[request_id=r1] starts", "[request_id=r1] careful"]


def test_children_get_the_same_format() -> None:
    env = logs.child_env(_settings("json"), {"PATH": "/bin"})
    assert env["LOG_FORMAT"] == "json"
    assert env["PATH"] == "/bin"
