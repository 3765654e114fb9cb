"""Process logging for the API and the CLI: one format setting, quiet libraries, no secrets.

Why one module: the API's workers, ``agents-data`` and the children it starts must write
the same lines (``LOG_FORMAT=json`` for production, ``text`` for a terminal), tie them to
the request being served, and never print a credential, whatever a library logs.

- **Request ids.** :data:`request_id` holds the id of the request being served (the API sets
  it per request; anyio's worker threads copy it), and every line carries it.
- **Library noise.** Chatty libraries (the SQL parser's "Falling back to parsing as a
  'Command'", httpx's line per request, the Snowflake connector's progress, ...) log below
  ERROR at DEBUG: a line above INFO means something is wrong.
- **No secrets.** Every formatted line passes :func:`scrub`: bearer tokens, JWTs, passwords in
  URLs or ``key=value`` pairs and the values of URL query strings (signed URLs included) are
  replaced before the line is written.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import IO, Any

from shared.settings import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("agents_data_request_id", default=None)

# Loggers whose records below ERROR are routed to DEBUG (prefix match on the logger name).
NOISY = ("sqlglot", "httpx", "httpcore", "snowflake.connector", "urllib3", "botocore", "boto3", "s3transfer",
         "fakesnow", "alembic.runtime", "filelock", "multipart", "python_multipart", "hpack")

REDACTED = "[redacted]"
_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),  # JWT
    (re.compile(r"(://[^/\s:@]+):[^@/\s]+@"), r"\1:" + REDACTED + "@"),  # password in a URL
    (re.compile(r"(?i)\b((?:[a-z_]*_)?(?:password|passwd|secret|token|api_key|apikey|signature|credential)s?"
                r"[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;}]+"), r"\1" + REDACTED),
    # URL query strings: every value (signed URLs, and whatever a caller put there).
    (re.compile(r"(\?|&)([^=&#\s\"'?]+)=[^&#\s\"']*"), r"\1\2=" + REDACTED),
)


def scrub(text: str) -> str:
    """``text`` without credentials or query-string values."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


class QuietLibraries(logging.Filter):
    """Routes records of :data:`NOISY` loggers below ERROR to DEBUG, then applies the handler's level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if record.levelno < logging.ERROR and any(name == n or name.startswith(n + ".") for n in NOISY):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


# Attributes every LogRecord has; anything else given through ``extra=`` is a field of the line.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "request_id"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id] message key=value ...``: for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s%(kv)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        fields = {k: v for k, v in _fields(record).items() if k not in _TEXT_SKIP}
        record.kv = "".join(f" {k}={_text(v)}" for k, v in fields.items() if v not in (None, "", [], {}))
        return scrub(super().format(record))


# Fields an access line already says in its message (text format only).
_TEXT_SKIP = frozenset({"rid", "kv", "method", "route", "status", "duration_ms"})


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


_HANDLER_MARK = "_agents_data_handler"


def configure(settings: Settings, *, stream: IO[str] | None = None, level: str | None = None) -> logging.Handler:
    """Install the one root handler (replacing a previous one of ours); returns it.

    Idempotent: uvicorn workers and the CLI call it at start; a second call swaps the handler.
    """
    numeric = logging.getLevelName((level or settings.api.log_level).upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.observability.format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(QuietLibraries(numeric))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # The root passes everything at DEBUG and above only when DEBUG is asked for; the handler's filter
    # decides the rest (a library's WARNING demoted to DEBUG must still reach the filter to be dropped).
    root.setLevel(numeric)
    logging.captureWarnings(True)
    return handler


def child_env(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """The environment for a child process: the same log format and level as this process."""
    out = dict(env)
    out["LOG_FORMAT"] = settings.observability.format
    out.setdefault("LOG_LEVEL", settings.api.log_level)
    return out


class PrefixedLog:
    """A logger-like wrapper (``info``/``warning``/...) that starts every message with a prefix.

    Dagster's ``context.log`` writes to the run's event log, not through our handler: the sync
    step wraps it so each of its lines names the request that asked for the run.
    """

    def __init__(self, log: Any, prefix: str) -> None:
        self._log = log
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._log, name)
        if name not in ("debug", "info", "warning", "warn", "error", "exception", "critical"):
            return target

        def call(msg: Any, *args: Any, **kwargs: Any) -> Any:
            return target(f"{self._prefix}{msg}", *args, **kwargs)

        return call
