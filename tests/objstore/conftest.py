"""Fixtures for served data in object storage: one moto S3 server per session, a proxy and a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.objstore.objstore_support import S3Proxy, new_bucket, s3_proxy
from tests.orchestration.conftest import source  # noqa: F401 - a private database on the stand-in, as a fixture here
from tests.serving.artifact_support import moto_server, s3_client


@pytest.fixture(scope="session")
def served_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (``python -m moto.server``) on a free loopback port."""
    with moto_server(tmp_path_factory.mktemp("served-moto")) as url:
        yield url


@pytest.fixture
def proxy(served_moto: str) -> Iterator[S3Proxy]:
    with s3_proxy(served_moto) as p:
        yield p


@pytest.fixture
def bucket(served_moto: str) -> str:
    return new_bucket(s3_client(served_moto))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def shared_db(tmp_path: Path) -> str:
    """The control database both "machines" of a test share (nothing else is shared)."""
    return f"sqlite:///{tmp_path / 'control.db'}"
