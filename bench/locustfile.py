"""Locust scenario for ``bench/load.py``: one simulated agent per user, with its own token.

Run by ``bench/load.py`` (which starts the platform, mints the tokens and reads the
results); on its own: ``locust -f bench/locustfile.py --host URL`` with ``LOAD_AGENTS``
naming the JSON file ``bench/load.py`` writes (``{"tokens": [...], "orders": "...",
"events": "..."}``).

The task mix, by weight: catalog calls (list and describe), small queries (a point query
by key and a group-by aggregate, inline JSON), 100,000-row exports (Parquet and Arrow,
fetched in full), samples and profiles, artifact uploads and downloads (256 KiB), and
refreshes. Every answer is classified:

- 2xx, and 202 from a refresh or a still-running job: success;
- 429: a limit doing its job. It is reported under its own name (``429 <endpoint>``) and
  never counts as an unintended error;
- anything else, including transport errors: a failure named by its kind
  (``status <code>`` or the exception), so the report can give the error rate by kind.
"""

from __future__ import annotations

import itertools
import json
import os
import random  # load shapes, not secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

_CONFIG: dict[str, Any] = {}
_TOKENS: itertools.cycle[str] | None = None
_LOCK = threading.Lock()
THROTTLED: dict[str, int] = {}
FAILURES: list[dict[str, Any]] = []  # each unintended error with its time, for the swap windows


def _config() -> dict[str, Any]:
    global _TOKENS  # noqa: PLW0603 - one token cycle shared by every user of this process
    with _LOCK:
        if not _CONFIG:
            _CONFIG.update(json.loads(Path(os.environ["LOAD_AGENTS"]).read_text()))
            _TOKENS = itertools.cycle(_CONFIG["tokens"])
        assert _TOKENS is not None
        return {**_CONFIG, "token": next(_TOKENS)}


@events.request.add_listener
def _record_failure(request_type: str, name: str, exception: Any = None, **_: Any) -> None:
    if exception is not None:
        with _LOCK:
            FAILURES.append({"at": time.time(), "name": name, "kind": str(exception)[:200]})


@events.quitting.add_listener
def _write_outcomes(environment: Any, **_: Any) -> None:
    out = os.environ.get("LOAD_OUTCOMES_OUT")
    if out:
        Path(out).write_text(json.dumps({"throttled": THROTTLED, "failures": FAILURES}))


class Agent(HttpUser):
    """One agent: its own bearer token, the shared tables, a short think time."""

    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        cfg = _config()
        self.headers = {"Authorization": f"Bearer {cfg['token']}"}
        self.orders, self.events = cfg["orders"], cfg["events"]
        self.max_id = int(cfg["max_id"])

    def _call(self, method: str, url: str, name: str, ok: tuple[int, ...] = (200,),
              check: Callable[[Any], str | None] | None = None, **kw: Any) -> Any:
        with self.client.request(method, url, name=name, headers=self.headers, catch_response=True, **kw) as resp:
            if resp.status_code in ok:
                wrong = check(resp) if check else None
                if wrong:
                    resp.failure(wrong)
                    return None
                resp.success()
                return resp
            if resp.status_code == 429:
                with _LOCK:
                    THROTTLED[name] = THROTTLED.get(name, 0) + 1
                resp.success()  # a limit answering is the platform working; counted apart
                return None
            kind = f"status {resp.status_code}" if resp.status_code else f"transport {type(resp.error).__name__}"
            resp.failure(kind)
            return None

    @task(3)
    def list_tables(self) -> None:
        self._call("GET", "/api/v1/data/tables", "catalog: list")

    @task(2)
    def describe(self) -> None:
        self._call("GET", f"/api/v1/data/tables/{self.orders}", "catalog: describe")

    @task(8)
    def point_query(self) -> None:
        self._call("POST", "/api/v1/queries/execute", "query: point", json={
            "query": f"SELECT * FROM {self.orders} WHERE id = ?", "params": [random.randint(0, self.max_id)]})  # noqa: S311

    @task(4)
    def aggregate(self) -> None:
        self._call("POST", "/api/v1/queries/execute", "query: aggregate", json={
            "query": f"SELECT region, count(*) AS n, sum(amount) AS total FROM {self.orders} GROUP BY region ORDER BY region"})

    @task(1)
    def export(self) -> None:
        fmt = random.choice(("parquet", "arrow"))  # noqa: S311
        resp = self._call("POST", "/api/v1/queries/execute", f"export: {fmt} 100k (run)", ok=(200, 202), json={
            "query": f"SELECT * FROM {self.orders} ORDER BY id LIMIT 100000", "output_format": fmt,
            "max_rows": 100000, "wait_s": 30})
        if resp is None:
            return
        body = resp.json()
        if resp.status_code == 200 and body.get("result_url"):
            self._call("GET", body["result_url"], f"export: {fmt} 100k (fetch)")

    @task(1)
    def sample(self) -> None:
        self._call("GET", f"/api/v1/data/tables/{self.events}/sample?method=random&size=200", "sample")

    @task(1)
    def profile(self) -> None:
        self._call("GET", f"/api/v1/data/tables/{self.events}/profile", "profile")

    @task(1)
    def artifact(self) -> None:
        payload = os.urandom(256 * 1024)
        resp = self._call("POST", "/api/v1/artifacts", "artifact: upload", ok=(201,),
                          files={"file": ("load.bin", payload, "application/octet-stream")},
                          data={"visibility": "swarm", "expires_in": "1h"})
        if resp is None:
            return
        art = resp.json()["id"]
        self._call("GET", f"/api/v1/artifacts/{art}/content", "artifact: download",
                   check=lambda r: None if r.content == payload else "artifact content differs")

    @task(1)
    def refresh(self) -> None:
        table = random.choice((self.orders, self.events))  # noqa: S311
        self._call("POST", f"/api/v1/data/tables/{table}/refresh", "refresh", ok=(200, 202), json={"max_age_s": 30})
