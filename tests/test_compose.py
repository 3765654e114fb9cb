"""compose.yaml is valid for a real Compose parser, complete, and fully configured by .env.example.

No Docker engine runs here: Debian's ``docker-compose`` (installed by ``.ci/run``) parses
and interpolates the file with ``config``, which needs no engine.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.lib.ready import run_ready_checks
from shared.settings import documented_env_vars

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
APP_SERVICES = ("dagster-code-server", "dagster-webserver", "dagster-daemon", "api")
REQUIRED_ENV = ("ADMIN_USERNAME", "ADMIN_PASSWORD", "JWT_SECRET", "DATABASE_URL", "DAGSTER_PG_URL",
                "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE",
                "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE")
# Read by processes in the containers but not Settings fields: Dagster's storage URL (dagster.postgres.yaml)
# and the AWS SDK's credentials for the s3 artifact backend.
EXTRA_PROCESS_ENV = {"DAGSTER_PG_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's docker-compose package)")
    return binary


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value
    return out


def _referenced() -> set[str]:
    text = COMPOSE.read_text(encoding="utf-8")
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """``docker-compose config`` output: the file as Compose itself resolves it (anchors, .env values)."""
    binary = _compose()
    out = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_compose_config_is_valid() -> None:
    binary = _compose()
    out = subprocess.run([binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr


def test_missing_required_values_are_refused_with_a_message(tmp_path: Path) -> None:
    binary = _compose()
    env = tmp_path / "partial.env"
    env.write_text("\n".join(f"{k}={v}" for k, v in _env_example().items() if k != "JWT_SECRET"))
    out = subprocess.run([binary, "--env-file", str(env), "-f", str(COMPOSE), "config", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert "JWT_SECRET" in out.stderr


def test_topology(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert {"postgres", *APP_SERVICES} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    code_server = services["dagster-code-server"]["command"]
    assert code_server[:3] == ["dagster", "code-server", "start"]
    assert "orchestration.definitions" in code_server
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"
    assert services["dagster-daemon"]["command"][:4] == ["python", "-m", "orchestration.daemon", "run"]
    assert int(services["api"]["deploy"]["replicas"]) >= 2
    # served data is shared by the writers (runs in the code server) and the API replicas
    mounts = {name: {v.split(":")[0] for v in s.get("volumes", [])} for name, s in services.items()}
    assert "served" in mounts["api"] & mounts["dagster-code-server"]
    assert "served" in resolved["volumes"]
    api_env = services["api"]["environment"]
    assert api_env["DAGSTER_GRAPHQL_URL"] == "http://dagster-webserver:3000/dagster/graphql"
    assert api_env["DATABASE_URL"].startswith("postgresql")


@pytest.mark.parametrize("service", ["postgres", *APP_SERVICES, "proxy"])
def test_every_service_has_healthcheck_restart_and_limits(resolved: dict[str, Any], service: str) -> None:
    spec = resolved["services"][service]
    assert spec.get("healthcheck", {}).get("test"), f"{service} has no health check"
    assert spec.get("restart") in ("unless-stopped", "always", "on-failure"), f"{service} has no restart policy"
    limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("cpus"), f"{service} has no CPU limit"
    assert limits.get("memory"), f"{service} has no memory limit"


def test_api_health_check_is_readiness_that_tolerates_dagster_down(resolved: dict[str, Any]) -> None:
    """The API's check hits /ready, which answers 503 only when reads cannot be served (see
    serving/lib/ready.py); Dagster down is 200 "degraded", so replicas are not marked unhealthy."""
    check = resolved["services"]["api"]["healthcheck"]
    test = " ".join(check["test"])
    assert "http://127.0.0.1:8000/ready" in test
    # /ready answers within its per-check limit, before the probe and Compose give up on it
    per_check_s = inspect.signature(run_ready_checks).parameters["timeout_s"].default
    probe_s = float(re.search(r"timeout=(\d+(?:\.\d+)?)", test).group(1))  # type: ignore[union-attr]
    compose_s = float(str(check["timeout"]).rstrip("s"))
    assert per_check_s < probe_s < compose_s


def test_object_storage_variant_gives_the_api_its_own_cache_and_minio(tmp_path: Path) -> None:
    """``--profile objstore`` with SERVED_STORAGE=s3: MinIO and its bucket come up, every app
    process publishes to or reads from it, and the API mounts its own cache, not the runs' volume."""
    binary = _compose()
    values = {**_env_example(), "SERVED_STORAGE": "s3", "SERVED_S3_ENDPOINT_URL": "http://minio:9000",
              "API_DATA_VOLUME": "api-cache", "AWS_ACCESS_KEY_ID": "minio-root",
              "AWS_SECRET_ACCESS_KEY": "minio-root-password"}
    env = tmp_path / "objstore.env"
    env.write_text("\n".join(f"{k}={v}" for k, v in values.items()))
    out = subprocess.run([binary, "--env-file", str(env), "-f", str(COMPOSE), "--profile", "objstore", "config"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert {"minio", "minio-init"} <= set(services)
    assert services["minio"]["healthcheck"]["test"]
    for name in APP_SERVICES:
        app_env = services[name]["environment"]
        assert app_env["SERVED_STORAGE"] == "s3"
        assert app_env["SERVED_S3_ENDPOINT_URL"] == "http://minio:9000"
    api_mounts = {v.split(":")[0] if isinstance(v, str) else v["source"] for v in services["api"]["volumes"]}
    assert api_mounts == {"api-cache"}
    assert "minio" not in {n for n, s in services.items() if s.get("ports")}


def test_env_example_has_every_variable_compose_references() -> None:
    documented = set(_env_example())
    assert sorted(_referenced() - documented) == []


def test_env_example_has_the_required_settings_and_nothing_stale() -> None:
    documented = set(_env_example())
    assert sorted(set(REQUIRED_ENV) - documented) == []
    assert sorted(documented - _referenced()) == [], "variables in .env.example that compose.yaml never uses"


def test_app_processes_get_only_known_settings(resolved: dict[str, Any]) -> None:
    """A misspelt setting in compose.yaml would be silently ignored by the processes."""
    known = set(documented_env_vars()) | EXTRA_PROCESS_ENV
    for name in APP_SERVICES:
        unknown = sorted(set(resolved["services"][name]["environment"]) - known)
        assert unknown == [], f"{name}: {unknown}"


def test_dockerfile_copies_only_existing_paths() -> None:
    sources: list[str] = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources.extend(line.split()[1:-1])
    assert sources
    assert sorted(s for s in sources if not (ROOT / s).exists()) == []
    for mounted in ("deploy/nginx.conf", "deploy/postgres-init.sh", "deploy/workspace.grpc.yaml"):
        assert (ROOT / mounted).exists()


def test_only_the_proxy_publishes_a_port_and_dagster_sits_behind_the_api(resolved: dict[str, Any]) -> None:
    """The Dagster webserver has no authentication of its own: nothing but the compose network
    reaches it, and people come through the API's admin-only proxy at /dagster/."""
    services = resolved["services"]
    published = sorted(name for name, spec in services.items() if spec.get("ports"))
    assert published == ["proxy"]
    webserver = services["dagster-webserver"]["command"]
    assert webserver[webserver.index("--path-prefix") + 1] == "/dagster"
    assert "/dagster/server_info" in " ".join(services["dagster-webserver"]["healthcheck"]["test"])
    assert services["api"]["environment"]["DAGSTER_UI_URL"].endswith("/dagster")


def test_nginx_never_passes_a_client_sso_header_and_relays_websockets() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    active = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    assert 'proxy_set_header X-Forwarded-User "";' in active
    assert "proxy_set_header Upgrade $http_upgrade;" in active
    assert "proxy_set_header Host $http_host;" in active


def test_the_metrics_profile_scrapes_every_api_replica(resolved: dict[str, Any]) -> None:
    """Prometheus (profile ``metrics``) finds the API replicas by the service's DNS name, on the port the
    API serves /metrics on; each replica keeps its workers' metric files to itself."""
    services = resolved["services"]
    prom = services["prometheus"]
    assert prom.get("profiles") == ["metrics"]
    assert prom.get("healthcheck", {}).get("test")
    assert prom.get("restart") == "unless-stopped"
    assert prom["deploy"]["resources"]["limits"].get("memory")
    api_env = services["api"]["environment"]
    assert api_env["METRICS"] == "port"
    assert api_env["METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container, on the compose network
    assert not api_env["PROMETHEUS_MULTIPROC_DIR"].startswith("/data")  # /data is shared by every replica
    mounted = {v.split(":")[0] for v in prom["volumes"]}
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    assert any(m.endswith("deploy/prometheus.yml") for m in mounted)
    [job] = config["scrape_configs"]
    [sd] = job["dns_sd_configs"]
    assert sd["names"] == ["api"]
    assert sd["port"] == int(api_env["METRICS_PORT"])


def test_the_grafana_dashboard_only_uses_metrics_the_api_exposes() -> None:
    import json

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "agents-data.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bagents_data_\w+", e)}
    source = (ROOT / "serving" / "lib" / "metrics.py").read_text(encoding="utf-8")
    families = set(re.findall(r'"(agents_data_\w+)"', source))
    exposed = {f + suffix for f in families for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    assert used
    assert sorted(used - exposed) == []
    assert len(families & {u.removesuffix("_total").removesuffix("_bucket") for u in used}) >= 15
