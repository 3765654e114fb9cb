"""Interactive API docs at ``/docs`` render offline: the page references only this server."""

from __future__ import annotations

import re
from typing import Any

ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_docs_page_references_only_local_assets_and_they_are_served(client: Any) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "SwaggerUIBundle" in html
    urls = ATTR.findall(html)
    assert urls, "the page loads no assets?"
    for url in urls:
        assert url.startswith("/"), f"non-local asset: {url}"
        assert not url.startswith("//"), f"protocol-relative asset: {url}"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert not re.search(r"https?://(?!testserver)[^\s\"'<>]*\.(?:js|css)", html), "a CDN asset slipped in"
    assert "fonts.googleapis" not in html
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html


def test_asset_content_types(client: Any) -> None:
    assert "javascript" in client.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"]
    assert client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")


def test_openapi_document(client: Any) -> None:
    r = client.get("/docs/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/api/v1/auth/token", "/api/v1/admin/swarms", "/api/v1/admin/swarms/{swarm_id}",
                 "/api/v1/admin/tokens", "/api/v1/admin/tokens/{token_id}", "/api/v1/admin/audit",
                 "/api/v1/swarm/agents/tokens", "/health", "/ready"):
        assert path in paths, path
    assert doc["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert paths["/api/v1/admin/swarms"]["post"]["operationId"] == "createSwarm"
    assert all(p.startswith("/") for p in paths)
    assert not any(p.startswith("/docs/assets") for p in paths)


def test_docs_need_no_token(client: Any) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/openapi.json").status_code == 200


def test_alias_paths_get_their_own_operation_ids(api_settings: Any) -> None:
    from litestar import get
    from litestar.testing import TestClient

    from serving.app import create_app

    @get(["/test/things/{thing_id:str}", "/test/t/{thing_id:str}"], operation_id="getThing", sync_to_thread=False)
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app = create_app(api_settings)
    app.register(thing)
    from serving.lib.docs import unique_operation_ids

    unique_operation_ids(app)
    with TestClient(app) as client:
        doc = client.get("/docs/openapi.json").json()
    ops = [op["operationId"] for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)
           and "operationId" in op]
    assert len(ops) == len(set(ops))
    assert doc["paths"]["/test/things/{thing_id}"]["get"]["operationId"] == "getThing"
    assert doc["paths"]["/test/t/{thing_id}"]["get"]["operationId"] == "getThingAlias1"
