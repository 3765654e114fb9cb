"""Typed settings read from the environment, one dataclass per concern.

Why: every process (Dagster code server, run workers, API replicas, CLI) must agree on
where data lives and how to reach Snowflake, and nothing may read the environment at
import time. ``get_settings()`` is the single, cached entry point; tests build
``Settings.from_env(env)`` with an explicit mapping instead of patching globals.

Every field names its environment variable in ``env_var(...)``; ``documented_env_vars()``
lists them so a test can check that the README documents each one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints

_ENV = "env"
_DOC = "doc"


def env_var(name: str, default: Any, doc: str) -> Any:
    """Declare a setting bound to environment variable ``name``."""
    return dataclasses.field(default=default, metadata={_ENV: name, _DOC: doc})


def _coerce(raw: str, kind: Any, name: str) -> Any:
    try:
        if kind in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError as e:
        raise SettingsError(f"setting {name}={raw!r} is not a valid {kind}") from e
    return raw


class SettingsError(ValueError):
    """A setting in the environment has a value of the wrong shape."""


def _load(cls: type, env: Mapping[str, str], **overrides: Any) -> Any:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = f.metadata.get(_ENV)
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif name and env.get(name) not in (None, ""):
            kind = hints[f.name]
            base = kind if kind in (bool, int, float) else str
            values[f.name] = _coerce(env[name], base, name)
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class SnowflakeSettings:
    """How to reach the Snowflake source. Empty account means the embedded stand-in."""

    account: str = env_var("SNOWFLAKE_ACCOUNT", "", "Snowflake account identifier. Empty (and no SNOWFLAKE_HOST): use the embedded local stand-in (fakesnow); an explicit host and port always win.")
    user: str = env_var("SNOWFLAKE_USER", "fake", "Snowflake user (ideally a dedicated read-only service user).")
    password: str = env_var("SNOWFLAKE_PASSWORD", "snow", "Snowflake password.")
    database: str = env_var("SNOWFLAKE_DATABASE", "DEMO", "Default Snowflake database for registrations and browsing.")
    warehouse: str = env_var("SNOWFLAKE_WAREHOUSE", "", "Snowflake warehouse used by syncs.")
    role: str = env_var("SNOWFLAKE_ROLE", "", "Snowflake role (a read-only role is advised).")
    host: str = env_var("SNOWFLAKE_HOST", "", "Non-default endpoint host, e.g. 127.0.0.1 for a stand-in; when set it is used as given, whatever the account.")
    port: int = env_var("SNOWFLAKE_PORT", 0, "Non-default endpoint port (0: connector default).")
    protocol: str = env_var("SNOWFLAKE_PROTOCOL", "", "Non-default endpoint protocol: http or https.")
    query_tag: str = env_var("SNOWFLAKE_QUERY_TAG", "agents-data", "QUERY_TAG set on every source session, so syncs are visible in Snowflake's query history.")
    network_timeout_s: int = env_var("SNOWFLAKE_NETWORK_TIMEOUT_S", 60, "Connector network timeout in seconds; bounds a hung source.")
    slice_rows: int = env_var("SYNC_SLICE_ROWS", 250_000, "Rows per extraction slice for unpartitioned tables; bounds sync memory.")

    @property
    def embedded(self) -> bool:
        """The embedded stand-in is the default only when neither an account nor a host is set.

        An explicit endpoint always wins: ``SNOWFLAKE_ACCOUNT=fakesnow`` with
        ``SNOWFLAKE_HOST``/``SNOWFLAKE_PORT`` targets that server, never the built-in one.
        """
        return not self.account and not self.host


@dataclasses.dataclass(frozen=True)
class SourceSettings:
    """File sources (DuckDB files, Parquet folders) and live (not copied) Snowflake tables."""

    file_roots: str = env_var("SOURCE_FILE_ROOTS", "", "Comma-separated folders that local DuckDB and Parquet sources must lie under (symlinks resolved). Empty: AGENTS_DATA_HOME/sources only.")
    s3_endpoint_url: str = env_var("SOURCE_S3_ENDPOINT_URL", "", "Endpoint of an S3-compatible server for s3:// Parquet sources (empty: AWS; credentials from the usual AWS_* variables).")
    s3_region: str = env_var("SOURCE_S3_REGION", "us-east-1", "Region for s3:// Parquet sources.")
    live_warehouse: str = env_var("LIVE_SNOWFLAKE_WAREHOUSE", "", "Warehouse that queries pushed down to Snowflake (live tables, engine snowflake) run on; empty: SNOWFLAKE_WAREHOUSE.")
    live_daily_budget_s: float = env_var("LIVE_DAILY_BUDGET_S", 3600.0, "Snowflake seconds per swarm per UTC day for pushed-down queries; past it they answer 429 live_budget (0: no pushed-down queries).")
    live_cache_ttl_s: int = env_var("LIVE_CACHE_TTL_S", 600, "Seconds an API process caches a live table's source statistics (columns, rows, bytes) for the catalog.")
    live_sample_ttl_s: int = env_var("LIVE_SAMPLE_TTL_S", 300, "Seconds an API process keeps a live table's samples and profiles (run in Snowflake) to answer the same request again without Snowflake; 0: never cached.")

    def roots(self, home: Path) -> list[Path]:
        """The allowed folders of local file sources, resolved."""
        named = [p.strip() for p in self.file_roots.split(",") if p.strip()]
        return [Path(p).expanduser().resolve() for p in named] or [(home / "sources").resolve()]


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """The embedded default: a fakesnow server seeded with demo data."""

    port: int = env_var("DEMO_SNOWFLAKE_PORT", 8765, "Port of the embedded fakesnow server started by `agents-data up`.")
    orders_rows: int = env_var("DEMO_ORDERS_ROWS", 1_000_000, "Rows seeded into the demo ORDERS table.")


@dataclasses.dataclass(frozen=True)
class DagsterSettings:
    """How the API reaches Dagster and how orchestration behaves."""

    graphql_url: str = env_var("DAGSTER_GRAPHQL_URL", "http://127.0.0.1:3000/dagster/graphql", "Dagster webserver GraphQL endpoint used by the API (internal address; the webserver runs with --path-prefix /dagster, and the API's /dagster/ proxy forwards there).")
    ui_url: str = env_var("DAGSTER_UI_URL", "", "Public Dagster UI base URL used in links (default: derived from DAGSTER_GRAPHQL_URL).")
    location_name: str = env_var("DAGSTER_LOCATION_NAME", "agents_data", "Code location name (workspace.yaml) reloaded after registrations.")
    webserver_port: int = env_var("DAGSTER_WEBSERVER_PORT", 3000, "Port of the Dagster webserver started by the CLI.")
    code_server_port: int = env_var("DAGSTER_CODE_SERVER_PORT", 4266, "Port of the Dagster gRPC code server started by the CLI.")
    schedules_running: bool = env_var("SCHEDULES_DEFAULT_RUNNING", True, "Whether per-table and housekeeping schedules start running on a fresh install.")
    sync_on_start: bool = env_var("SYNC_ON_START", True, "`agents-data up` asks the API for a first sync of every registered table that serves no data yet (time-partitioned: every complete partition, as a backfill).")
    ui_sso_header: str = env_var("DAGSTER_UI_SSO_HEADER", "X-Forwarded-User", "Header naming the user an SSO proxy authenticated; admits that user to the Dagster UI at /dagster/, but only on requests from DAGSTER_UI_SSO_PROXIES.")
    ui_sso_proxies: str = env_var("DAGSTER_UI_SSO_PROXIES", "", "Comma-separated addresses or CIDR ranges of the SSO proxies trusted to set DAGSTER_UI_SSO_HEADER. Empty: the header is ignored (admin login only).")
    request_timeout_s: float = env_var("DAGSTER_REQUEST_TIMEOUT_S", 30.0, "Timeout of one GraphQL call from the API.")
    source_change_interval_s: int = env_var("SOURCE_CHANGE_INTERVAL_S", 30, "Seconds between two evaluations of the source-change sensor (each asks the source for every registered table's change signature).")
    sync_reconcile_s: float = env_var("SYNC_RECONCILE_INTERVAL_S", 5.0, "Seconds between an API replica's checks of unfinished sync jobs against Dagster, so their status is true without anyone polling them (0: off).")
    backfill_interval_s: float = env_var("DAGSTER_BACKFILL_INTERVAL_S", 2.0, "Seconds between two passes of the Dagster daemon's backfill loop (orchestration/daemon.py; Dagster's own is 30): a backfill, such as an agent's refresh of a partitioned table, waits up to one pass to be launched and one more to be marked finished. 0.5 to 300.")
    warm_run_workers: bool = env_var("DAGSTER_WARM_RUN_WORKERS", True, "Run workers are forked from a process that already imported the code location (orchestration/launcher.py), so a run starts in well under a second; false: the code server spawns each one (Dagster's DefaultRunLauncher), as a multi-container deployment needs.")
    stuck_run_minutes: int = env_var("STUCK_JOB_MINUTES", 120, "Query jobs and syncs running longer than this are marked failed by housekeeping.")
    version_grace_minutes: int = env_var("SERVED_VERSION_GRACE_MINUTES", 30, "Superseded served-data versions are deleted after this many minutes.")


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """Admin credentials and token signing."""

    admin_username: str = env_var("ADMIN_USERNAME", "admin", "Admin login name for POST /api/v1/auth/token.")
    admin_password: str = env_var("ADMIN_PASSWORD", "", "Admin password. Empty: a random one is generated at start and printed once by `agents-data up`.")
    jwt_secret: str = env_var("JWT_SECRET", "", "HMAC secret for tokens (32+ bytes). Empty: a random secret is generated under AGENTS_DATA_HOME.")
    jwt_audience: str = env_var("JWT_AUDIENCE", "agents-data", "Audience claim required on every token.")
    jwt_issuer: str = env_var("JWT_ISSUER", "agents-data", "Issuer claim set on and required of every token.")
    admin_token_ttl_s: int = env_var("ADMIN_TOKEN_TTL_S", 3600, "Lifetime of admin tokens in seconds.")
    default_token_ttl_s: int = env_var("TOKEN_DEFAULT_TTL_S", 30 * 24 * 3600, "Default lifetime of swarm and agent tokens in seconds.")
    token_cache_ttl_s: float = env_var("TOKEN_CACHE_TTL_S", 1.0, "Seconds an API replica caches a token's revocation state, grants and grant policies; revocations, grant and policy changes reach other replicas within this time.")
    swarm_max_agent_tokens: int = env_var("SWARM_MAX_AGENT_TOKENS", 1000, "Live (unrevoked, unexpired) agent tokens a swarm token may have minted for its swarm at once; past it minting answers 409 token_limit (0: unlimited). Admin-minted tokens are not counted.")
    mask_secret: str = env_var("MASK_SECRET", "", "Secret keying the hash mask of columns (stable within a swarm, different across swarms); share it between replicas. Empty: derived from the token signing secret.")


@dataclasses.dataclass(frozen=True)
class QuerySettings:
    """Limits applied to agent SQL."""

    max_rows: int = env_var("QUERY_MAX_ROWS", 100_000, "Default and maximum max_rows of a JSON query result (csv, parquet and arrow files are capped by QUERY_MAX_RESULT_BYTES instead).")
    json_max_rows: int = env_var("QUERY_JSON_MAX_ROWS", 10_000, "Row cap for inline JSON results.")
    max_result_bytes: int = env_var("QUERY_MAX_RESULT_BYTES", 1 << 30, "Largest result file a query may write, in bytes: the only cap of a csv, parquet or arrow result.")
    timeout_s: float = env_var("QUERY_TIMEOUT_S", 30.0, "Default query time limit in seconds.")
    max_timeout_s: float = env_var("QUERY_MAX_TIMEOUT_S", 300.0, "Largest time limit a caller may ask for.")
    wait_s: float = env_var("QUERY_WAIT_S", 5.0, "Default seconds a request waits before answering with a job id.")
    result_ttl_s: int = env_var("QUERY_RESULT_TTL_S", 24 * 3600, "How long query results are kept.")
    memory_limit: str = env_var("QUERY_MEMORY_LIMIT", "1GB", "DuckDB memory_limit for agent connections.")
    threads: int = env_var("QUERY_THREADS", 2, "DuckDB threads for agent connections.")
    priorities: bool = env_var("QUERY_PRIORITIES", False, "true: agent work runs below the event loop's CPU priority from its start unless it is known to be cheap: query jobs whose SQL text is new or used much CPU in the last minute, result files, samples, profiles and DuckDB's own worker threads (Linux per-thread nice); it helped where other programs load the host, and hurt on an otherwise idle 2-core host (see Benchmarks). false (the default): only queries running past 0.2 s, samples and profiles are lowered.")
    heavy_concurrent: int = env_var("QUERY_HEAVY_CONCURRENT", 0, "Heavy agent work one API process runs at once, all agents together: samples, profiles and queries whose SQL text is not known to be cheap (new, or long or CPU-heavy lately). More waits for a place, fairly across agents (the agent with the fewest running goes first), within its own time limit, so a few agents' bombs cannot take the CPU from /health and other agents' point queries. 0: twice the CPU count.")
    max_temp_size: str = env_var("QUERY_MAX_TEMP_SIZE", "2GB", "DuckDB max_temp_directory_size for agent connections.")
    agent_concurrent: int = env_var("AGENT_MAX_CONCURRENT_QUERIES", 4, "Concurrent queries, samples and profiles per agent before 429.")
    json_max_bytes: int = env_var("QUERY_JSON_MAX_BYTES", 16 * 1024 * 1024, "Largest inline JSON result (rows encoded), in bytes; past it the answer is cut at the last whole row that fits, with a continuation (`cut_by: byte_cap`). Inline JSON is for answers a model or a script reads at once; more is a file (the continuation's Parquet), and a bigger inline answer only takes longer to cross the network while the agent waits.")
    process_memory_limit: str = env_var("QUERY_PROCESS_MEMORY_LIMIT", "", "RSS budget of one API process (e.g. 4GB); past it agent queries are interrupted (413 memory_limit) until it is back under: the longest-running of the swarm running the most first. Empty: 80% of the machine's or container's memory.")
    swarm_concurrent: int = env_var("SWARM_MAX_CONCURRENT_QUERIES", 16, "Concurrent queries, samples and profiles of all the tokens of one swarm together, per API process, before 429 (0: no swarm-wide limit). A swarm token mints agent tokens, each with its own AGENT_MAX_CONCURRENT_QUERIES: this bounds what minting more of them adds.")
    swarm_rpm: int = env_var("SWARM_REQUESTS_PER_MINUTE", 24000, "Requests per minute of all the tokens of one swarm together before 429 (0: no swarm-wide rate), beside each token's own AGENT_REQUESTS_PER_MINUTE.")
    swarm_refresh_per_minute: int = env_var("SWARM_REFRESHES_PER_MINUTE", 30, "Refresh requests per minute of all the tokens of one swarm together before 429 (0: no swarm-wide rate), beside each token's own AGENT_REFRESHES_PER_MINUTE.")
    agent_rpm: int = env_var("AGENT_REQUESTS_PER_MINUTE", 6000, "Requests per minute per agent before 429.")
    refresh_per_minute: int = env_var("AGENT_REFRESHES_PER_MINUTE", 10, "Refresh requests per minute per agent before 429.")
    async_threshold_bytes: int = env_var("QUERY_ASYNC_THRESHOLD_BYTES", 1 << 30, "A query whose dry-run estimate scans more bytes than this is sent to an async job at once (202), and a dry run says so (0: never).")


@dataclasses.dataclass(frozen=True)
class ArtifactSettings:
    """Where artifacts live and how big they may be."""

    max_bytes: int = env_var("ARTIFACT_MAX_BYTES", 50 * 1024 * 1024, "Largest artifact upload in bytes (413 beyond).")
    storage: str = env_var("ARTIFACT_STORAGE", "local", "Artifact backend: local (folder under AGENTS_DATA_HOME) or s3.")
    s3_bucket: str = env_var("ARTIFACT_S3_BUCKET", "", "Bucket for the s3 backend.")
    s3_endpoint_url: str = env_var("ARTIFACT_S3_ENDPOINT_URL", "", "Endpoint of an S3-compatible server (empty: AWS).")
    s3_prefix: str = env_var("ARTIFACT_S3_PREFIX", "artifacts/", "Key prefix inside the bucket.")
    s3_region: str = env_var("ARTIFACT_S3_REGION", "us-east-1", "Region of the s3 backend (credentials come from the usual AWS_* variables or profile).")
    default_ttl_s: int = env_var("ARTIFACT_DEFAULT_TTL_S", 7 * 24 * 3600, "Default artifact lifetime in seconds.")
    deleted_swarm_grace_s: int = env_var("DELETED_SWARM_ARTIFACT_GRACE_S", 7 * 24 * 3600, "Seconds the artifacts of a deleted swarm stay readable by the admin (only) before housekeeping deletes them.")
    swarm_storage_max_bytes: int = env_var("SWARM_STORAGE_MAX_BYTES", 20 * 1024**3, "Bytes one swarm may keep stored at once: its live artifacts and its query results not yet expired, together; past it uploads, saved results and result files answer 413 storage_quota until some expire or are deleted (0: unlimited).")


@dataclasses.dataclass(frozen=True)
class ServedSettings:
    """Where served versions live: the data home only, or object storage with a local cache per machine."""

    storage: str = env_var("SERVED_STORAGE", "local", "Served-data backend: local (the served folder under AGENTS_DATA_HOME, shared by every process) or s3 (versions uploaded to object storage, published in the control database; each machine keeps a local cache).")
    s3_bucket: str = env_var("SERVED_S3_BUCKET", "", "Bucket for SERVED_STORAGE=s3.")
    s3_endpoint_url: str = env_var("SERVED_S3_ENDPOINT_URL", "", "Endpoint of an S3-compatible server for served versions (empty: AWS).")
    s3_prefix: str = env_var("SERVED_S3_PREFIX", "served/", "Key prefix of served versions inside the bucket.")
    s3_region: str = env_var("SERVED_S3_REGION", "us-east-1", "Region of the served-data bucket (credentials come from the usual AWS_* variables or profile).")
    cache_max_bytes: int = env_var("SERVED_CACHE_MAX_BYTES", 20 * 1024**3, "SERVED_STORAGE=s3: bytes of served versions one machine keeps in its local cache; past it, versions no query is using are evicted (superseded ones first, then the least recently used).")
    poll_interval_s: float = env_var("SERVED_POLL_INTERVAL_S", 1.0, "SERVED_STORAGE=s3: seconds between an API replica's reads of the published versions in the control database; a publish reaches every replica within this plus the download time.")
    download_attempts: int = env_var("SERVED_DOWNLOAD_ATTEMPTS", 3, "SERVED_STORAGE=s3: attempts to download a version file whose sha256 does not match before giving up.")

    @property
    def remote(self) -> bool:
        return self.storage.strip().lower() == "s3"


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    """The serving process."""

    host: str = env_var("API_HOST", "127.0.0.1", "Interface the API binds to.")
    port: int = env_var("API_PORT", 8000, "Port the API listens on.")
    workers: int = env_var("API_WORKERS", 1, "Uvicorn worker processes per API replica.")
    replica_id: str = env_var("API_REPLICA_ID", "", "Name of this replica in audit rows and job records (default: hostname:pid).")
    log_level: str = env_var("LOG_LEVEL", "info", "Log level of every process.")
    max_body_bytes: int = env_var("API_MAX_BODY_BYTES", 10 * 1024 * 1024, "Largest request body in bytes (413 beyond); artifact uploads have their own limit, ARTIFACT_MAX_BYTES.")
    body_timeout_s: float = env_var("API_BODY_TIMEOUT_S", 60.0, "Seconds a client has to send a whole request body (and at most 10 s between two parts of it); slower senders get 408.")
    trusted_proxies: str = env_var("TRUSTED_PROXIES", "", "Comma-separated proxy addresses or networks (CIDR) whose X-Forwarded-For is believed; empty: the peer address is the client.")


LOG_FORMATS = ("text", "json")
METRICS_MODES = ("off", "port", "admin")


@dataclasses.dataclass(frozen=True)
class ObservabilitySettings:
    """Logs and metrics: how operators watch the platform."""

    log_format: str = env_var("LOG_FORMAT", "text", "Log line format of the API, the CLI and the children it starts: text (readable) or json (one JSON object per line, for production).")
    metrics: str = env_var("METRICS", "off", "Prometheus metrics: off; port (open on METRICS_PORT, an internal port, not the API port); admin (GET /metrics on the API port, admin token required).")
    metrics_host: str = env_var("METRICS_HOST", "127.0.0.1", "Interface of the internal metrics port (METRICS=port); 0.0.0.0 inside a container that the scraper reaches over a private network.")
    metrics_port: int = env_var("METRICS_PORT", 9464, "Internal port serving /metrics when METRICS=port (one per API replica, every uvicorn worker counted).")
    metrics_dir: str = env_var("PROMETHEUS_MULTIPROC_DIR", "", "Folder where uvicorn workers share their metric values (prometheus-client multiprocess mode); emptied at API start. Must be private to one API replica (never a shared volume). Empty: AGENTS_DATA_HOME/metrics/<hostname>-<API_PORT>.")

    @property
    def format(self) -> str:
        value = self.log_format.strip().lower()
        return value if value in LOG_FORMATS else "text"

    @property
    def metrics_mode(self) -> str:
        value = self.metrics.strip().lower()
        if value not in METRICS_MODES:
            raise SettingsError(f"setting METRICS={self.metrics!r} is not one of {', '.join(METRICS_MODES)}")
        return value


@dataclasses.dataclass(frozen=True)
class McpSettings:
    """The MCP server mounted at /mcp."""

    allowed_hosts: str = env_var("MCP_ALLOWED_HOSTS", "127.0.0.1:*,localhost:*,[::1]:*", "Comma-separated Host values the MCP endpoint accepts (host:port, port may be *); set the API's public host name here, or MCP requests through it are refused (421). `*` turns the check off.")
    answer_max_chars: int = env_var("MCP_ANSWER_MAX_CHARS", 12_000, "Character budget of one MCP tool answer (table, notes and footer); rows past it are cut and the footer says how to get the rest.")
    refresh_wait_s: float = env_var("MCP_REFRESH_WAIT_S", 20.0, "Seconds the MCP refresh_table tool waits for a refresh to finish before it returns the job to poll with get_job.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """All settings. ``home`` anchors every default path."""

    home: str = env_var("AGENTS_DATA_HOME", ".agents-data", "Root for served DuckDB data, artifacts, query results, the local control database and the default Dagster home.")
    database_url: str = env_var("DATABASE_URL", "", "Control database URL (SQLAlchemy). Empty: SQLite file under AGENTS_DATA_HOME. PostgreSQL: postgresql+psycopg://user@host/db.")
    dagster_home: str = env_var("DAGSTER_HOME", "", "Dagster instance folder (default AGENTS_DATA_HOME/dagster).")
    snowflake: SnowflakeSettings = dataclasses.field(default_factory=SnowflakeSettings)
    demo: DemoSettings = dataclasses.field(default_factory=DemoSettings)
    sources: SourceSettings = dataclasses.field(default_factory=SourceSettings)
    dagster: DagsterSettings = dataclasses.field(default_factory=DagsterSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    query: QuerySettings = dataclasses.field(default_factory=QuerySettings)
    artifacts: ArtifactSettings = dataclasses.field(default_factory=ArtifactSettings)
    served: ServedSettings = dataclasses.field(default_factory=ServedSettings)
    api: ApiSettings = dataclasses.field(default_factory=ApiSettings)
    observability: ObservabilitySettings = dataclasses.field(default_factory=ObservabilitySettings)
    mcp: McpSettings = dataclasses.field(default_factory=McpSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        nested = {
            f.name: _load(f.default_factory, env)  # type: ignore[misc, arg-type]
            for f in dataclasses.fields(cls)
            if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        }
        base = _load(cls, env, **nested)
        home = str(Path(base.home).expanduser().resolve())
        return dataclasses.replace(base, home=home, **overrides)

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def served_path(self) -> Path:
        return self.home_path / "served"

    @property
    def results_path(self) -> Path:
        return self.home_path / "results"

    @property
    def artifacts_path(self) -> Path:
        return self.home_path / "artifacts"

    @property
    def control_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'control.db'}"

    @property
    def dagster_home_path(self) -> Path:
        return Path(self.dagster_home) if self.dagster_home else self.home_path / "dagster"

    @property
    def metrics_dir_path(self) -> Path:
        configured = self.observability.metrics_dir
        if configured:
            return Path(configured)
        import socket

        return self.home_path / "metrics" / f"{socket.gethostname()}-{self.api.port}"


def documented_env_vars() -> dict[str, str]:
    """Every environment variable the platform reads, with its description."""
    out: dict[str, str] = {}

    def walk(cls: type) -> None:
        for f in dataclasses.fields(cls):
            if f.metadata.get(_ENV):
                out[f.metadata[_ENV]] = f.metadata[_DOC]
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                walk(f.default_factory)  # type: ignore[arg-type]

    walk(Settings)
    return out


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once from ``os.environ``."""
    return Settings.from_env()
