"""Bad input to every artifact endpoint answers a clear 4xx in the one error shape, never a 5xx.

Run on SQLite and on PostgreSQL (the production control database), which refuses
things SQLite lets through: NUL characters in strings, NaN in JSON, over-long values
in length-limited columns. Each case also checks that nothing was stored or changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from shared.control.db import session_scope
from shared.control.models import ArtifactRow
from shared.settings import Settings
from tests.conftest import postgres_schema
from tests.serving.artifact_support import stored_files
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

A = "/api/v1/artifacts"
MISSING = f"{A}/art_{'0' * 24}"
JSON = {"Content-Type": "application/json"}
FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx\r\n--b--\r\n'


@dataclasses.dataclass
class World:
    client: TestClient[Litestar]
    settings: Settings
    home: Path
    agent: dict[str, str]
    art: dict[str, Any]

    def state(self) -> tuple[int, list[Path], dict[str, Any]]:
        """Rows, stored files and the sample artifact's metadata: a refused request changes none of them."""
        with session_scope(self.settings.control_url) as s:
            rows = int(s.scalar(sa.select(sa.func.count()).select_from(ArtifactRow)) or 0)
        meta = self.client.get(f"{A}/{self.art['id']}", headers=self.agent).json()
        return rows, stored_files(self.home), meta


@contextlib.contextmanager
def _control_db(kind: str, home: Path) -> Iterator[str]:
    """A SQLite file, or a fresh schema on the PostgreSQL server named by TEST_POSTGRES_URL."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'control.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("bad-input") / "home"
    home.mkdir()
    with _control_db(request.param, home) as url:
        settings = Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": url,
                                      "JWT_SECRET": "test-secret-" + "b" * 32, "ADMIN_PASSWORD": "admin-password"})
        with TestClient(create_app(settings)) as client:
            admin = bearer(admin_token(client))
            agent = bearer(mint_token(client, admin, "agent", create_swarm(client, admin, [])["id"])["token"])
            r = client.post(A, headers=agent, files={"file": ("keep.txt", b"keep", "text/plain")},
                            data={"tags": "keep", "metadata": '{"k": 1}'})
            assert r.status_code == 201, r.text
            yield World(client, settings, home, agent, r.json())


def _upload(**fields: str) -> Callable[[World], Any]:
    return lambda w: w.client.post(A, headers=w.agent, files={"file": ("f.bin", b"payload", "text/plain")}, data=fields)


def _raw_upload(body: bytes, ctype: str = "multipart/form-data; boundary=b") -> Callable[[World], Any]:
    return lambda w: w.client.post(A, headers={**w.agent, "Content-Type": ctype}, content=body)


def _patch(body: bytes) -> Callable[[World], Any]:
    return lambda w: w.client.patch(f"{A}/{w.art['id']}", headers={**w.agent, **JSON}, content=body)


def _list(**params: Any) -> Callable[[World], Any]:
    return lambda w: w.client.get(A, headers=w.agent, params=params)


def _content(**headers: str) -> Callable[[World], Any]:
    return lambda w: w.client.get(f"{A}/{w.art['id']}/content", headers={**w.agent, **headers})


def _job(job_id: str, body: bytes = b"{}") -> Callable[[World], Any]:
    return lambda w: w.client.post(f"/api/v1/queries/jobs/{job_id}/artifact", headers={**w.agent, **JSON}, content=body)


DEEP = "[" * 20_000 + "]" * 20_000
CASES: dict[str, tuple[Callable[[World], Any], int]] = {
    # ids that name nothing: 404 like any missing id (NUL cannot reach PostgreSQL)
    "get NUL id": (lambda w: w.client.get(f"{A}/art_%00x", headers=w.agent), 404),
    "get long id": (lambda w: w.client.get(f"{A}/{'a' * 65}", headers=w.agent), 400),
    "get unicode id": (lambda w: w.client.get(f"{A}/art_%E2%80%AE1", headers=w.agent), 404),
    "content NUL id": (lambda w: w.client.get(f"{A}/art_%00x/content", headers=w.agent), 404),
    "patch NUL id": (lambda w: w.client.patch(f"{A}/art_%00x", headers=w.agent, json={"name": "x"}), 404),
    "delete NUL id": (lambda w: w.client.delete(f"{A}/art_%00x", headers=w.agent), 404),
    "patch missing": (lambda w: w.client.patch(MISSING, headers=w.agent, json={"name": "x"}), 404),
    # list filters
    "list tag NUL": (_list(tag="a\x00b"), 400),
    "list tag bidi": (_list(tag="a\u202eb"), 400),
    "list owner NUL": (_list(owner="tok\x00"), 400),
    "list owner spaces": (_list(owner="no such owner"), 400),
    "list content_type NUL": (_list(content_type="text/\x00"), 400),
    "list content_type nonsense": (_list(content_type="nonsense"), 400),
    "list created_after words": (_list(created_after="yesterday"), 400),
    "list offset 2^63": (_list(offset=2**63), 400),
    "list offset 10^20": (_list(offset=10**20), 400),
    "list offset negative": (_list(offset=-1), 400),
    "list limit huge": (_list(limit=10**6), 400),
    "list limit text": (_list(limit="ten"), 400),
    # upload form fields
    "metadata NaN": (_upload(metadata='{"a": NaN}'), 400),
    "metadata Infinity": (_upload(metadata='{"a": -Infinity}'), 400),
    "metadata 1e999": (_upload(metadata='{"a": 1e999}'), 400),
    "metadata lone surrogate": (_upload(metadata='{"a": "\\ud800"}'), 400),
    "metadata nested too deep": (_upload(metadata='{"a": ' + DEEP + "}"), 400),
    "metadata a string": (_upload(metadata='"just text"'), 400),
    "tags nested too deep": (_upload(tags=DEEP), 400),
    "tags NUL": (_upload(tags="a\x00"), 400),
    "visibility nested too deep": (_upload(visibility=DEEP), 400),
    "visibility NUL id": (_upload(visibility='["tok\\u0000"]'), 400),
    "expires_in 5000 digits": (_upload(expires_in="9" * 5000), 400),
    "expires_in 20 digits days": (_upload(expires_in="9" * 20 + "d"), 400),
    "expires_in negative": (_upload(expires_in="-5"), 400),
    "expires_in unicode digits": (_upload(expires_in="\u0661\u0662"), 400),
    "content_type over 255": (_upload(content_type="text/" + "a" * 120 + "; x=" + "b" * 200), 400),
    "name over 255": (_upload(name="n" * 256), 400),
    "name NUL": (_upload(name="a\x00.txt"), 400),
    "name lone surrogate": (_raw_upload(b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xed\xa0\x80\r\n'
                                        + FILE_PART), 400),
    "part content type over 255": (_raw_upload(b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
                                               b"Content-Type: text/" + b"a" * 300 + b"\r\n\r\nx\r\n--b--\r\n"), 400),
    "field not UTF-8": (_raw_upload(b'--b\r\nContent-Disposition: form-data; name="tags"\r\n\r\n\xff\xfe\r\n'
                                    + FILE_PART), 400),
    "field name not UTF-8": (_raw_upload(b'--b\r\nContent-Disposition: form-data; name="\xff"\r\n\r\nx\r\n'
                                         + FILE_PART), 400),
    "boundary empty": (_raw_upload(b"x", "multipart/form-data; boundary="), 400),
    "boundary over 70": (_raw_upload(b"x", "multipart/form-data; boundary=" + "b" * 71), 400),
    "body is not the boundary": (_raw_upload(b"garbage without any boundary"), 400),
    "no content type": (lambda w: w.client.post(A, headers=w.agent, content=b"x"), 415),
    "json instead of multipart": (lambda w: w.client.post(A, headers=w.agent, json={"name": "x"}), 415),
    # PATCH bodies
    "patch not JSON": (_patch(b"{nope"), 400),
    "patch a list": (_patch(b"[1]"), 400),
    "patch nested too deep": (_patch(b'{"metadata": {"a": ' + DEEP.encode() + b"}}"), 400),
    "patch metadata NaN": (_patch(b'{"metadata": {"a": NaN}}'), 400),
    "patch metadata 1e999": (_patch(b'{"metadata": {"a": 1e999}}'), 400),
    "patch metadata too big": (_patch(b'{"metadata": {"a": "' + b"x" * 17_000 + b'"}}'), 400),
    "patch name int": (_patch(b'{"name": 5}'), 400),
    "patch name empty": (_patch(b'{"name": ""}'), 400),
    "patch tags not strings": (_patch(b'{"tags": [1]}'), 400),
    "patch visibility empty list": (_patch(b'{"visibility": []}'), 400),
    "patch visibility NUL": (_patch(b'{"visibility": ["a\\u0000"]}'), 400),
    "patch expires_in 40 digits": (_patch(b'{"expires_in": ' + b"9" * 40 + b"}"), 400),
    "patch expires_in bool": (_patch(b'{"expires_in": true}'), 400),
    "patch expires_at year 1 +14:00": (_patch(b'{"expires_at": "0001-01-01T00:00:00+14:00"}'), 400),
    "patch expires_at year 9999 -14:00": (_patch(b'{"expires_at": "9999-12-31T23:59:59-14:00"}'), 400),
    "patch expires_at words": (_patch(b'{"expires_at": "tomorrow"}'), 400),
    "patch unknown field": (_patch(b'{"owner": "me"}'), 400),
    # downloads: odd Range headers are ignored (200) or unsatisfiable (416), never an error
    "range start 400 digits": (_content(Range="bytes=" + "9" * 400 + "-"), 416),
    "range suffix 5000 digits": (_content(Range="bytes=-" + "9" * 5000), 206),
    "range end 5000 digits": (_content(Range="bytes=0-" + "9" * 5000), 206),
    "range zero suffix": (_content(Range="bytes=-0"), 416),
    "range garbage": (_content(Range="bytes=\x01-\x02"), 200),
    "if-none-match garbage": (_content(**{"If-None-Match": ",,,W/"}), 200),
    # saving a query result
    "job NUL id": (_job("job%00x"), 400),
    "job id with spaces": (_job("job%20x"), 400),
    "job id over 64": (_job("j" * 65), 400),
    "job missing": (_job("job_missing"), 404),
    "job body not JSON": (_job("job_x", b"{"), 400),
    "job body nested too deep": (_job("job_x", b'{"metadata": ' + DEEP.encode() + b"}"), 400),
    "job format xlsx": (_job("job_x", b'{"format": "xlsx"}'), 400),
    "job metadata NaN": (_job("job_x", b'{"metadata": {"a": NaN}}'), 400),
    "job name NUL": (_job("job_x", b'{"name": "a\\u0000"}'), 400),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_clear_4xx(world: World, case: str) -> None:
    call, status = CASES[case]
    before = world.state()
    r = call(world)
    if status < 300:
        assert r.status_code == status, r.text[:300]
    else:
        error = assert_error(r, status)
        assert error["message"], error
    assert world.state() == before


@pytest.mark.parametrize("path", ["art_%00x", f"art_{'0' * 24}", "art_%E2%80%AE"])
def test_head_of_a_bad_id_is_404(world: World, path: str) -> None:
    r = world.client.head(f"{A}/{path}/content", headers=world.agent)
    assert r.status_code == 404
    assert "etag" not in r.headers
