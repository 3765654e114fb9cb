"""Interactive API docs at ``/docs`` that work offline, and the OpenAPI document.

Why local assets: Litestar's UI pages load Swagger UI from a CDN, which many agents'
networks (and this project's machines) cannot reach. The Swagger UI 5 bundle shipped
in the ``swagger-ui-py`` wheel is served from ``/docs/assets/`` instead, and the page
references nothing outside this server.

Routes: ``/docs`` (Swagger UI), ``/docs/openapi.json``, ``/docs/openapi.yaml``,
``/docs/assets/*``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin  # the app's own plugin; no public hook edits its document
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.static_files import create_static_files_router

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
BEARER = "BearerToken"
_ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")


def assets_dir() -> Path:
    """The folder of the Swagger UI distribution inside the installed ``swagger_ui`` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package swagger-ui-py is not installed; it provides the offline /docs assets")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def openapi_config(version: str) -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path="/",
    )
    return OpenAPIConfig(
        title="agents-data API",
        version=version,
        description=("Safe, fast, audited SQL access to synced Snowflake tables for AI agents. "
                     "Authenticate with `Authorization: Bearer <token>`: admins get one from "
                     "`POST /api/v1/auth/token`, swarm and agent tokens come from the admin endpoints."),
        path=DOCS_PATH,
        render_plugins=[swagger],
        components=Components(security_schemes={
            BEARER: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT",
                                   description="Admin, swarm or agent token"),
        }),
        security=[{BEARER: []}],
    )


def _path_key(path: str) -> str:
    """``/a/{id:str}`` and path components both become ``/a/{id}``."""
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", path.rstrip("/") or "/")


def unique_operation_ids(app: Litestar) -> None:
    """Give each alias path of a multi-path handler its own operation id.

    Why: a handler served at several paths (``/queries/execute`` and its documented alias
    ``/queries``) with one fixed ``operation_id`` makes OpenAPI generation fail (ids must
    be unique) and ``/docs`` answer 500. The longest path keeps the id; each alias gets
    ``<id>Alias<n>``.
    """
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            paths = sorted(getattr(handler, "paths", ()), key=lambda p: (-len(p), p))
            name = getattr(handler, "operation_id", None)
            if len(paths) < 2 or not isinstance(name, str):
                continue
            ids = {_path_key(p): name if i == 0 else f"{name}Alias{i}" for i, p in enumerate(paths)}

            def creator(_handler: Any, _method: Any, components: list[Any], ids: dict[str, str] = ids,
                        name: str = name) -> str:
                path = "/" + "/".join(c if isinstance(c, str) else "{" + c.name + "}" for c in components)
                return ids.get(_path_key(path), name)

            handler.operation_id = creator


ERROR_SCHEMA = "Error"


def _error_schema() -> Schema:
    """The one error shape (serving/lib/errors.py), as the OpenAPI document states it."""
    nullable_str = Schema(one_of=[Schema(type="string"), Schema(type="null")])  # type: ignore[arg-type]
    body = Schema(type="object", required=["status", "code", "message", "rule", "details"],  # type: ignore[arg-type]
                  additional_properties=False,
                  properties={"status": Schema(type="integer"), "code": Schema(type="string"),  # type: ignore[arg-type]
                              "message": Schema(type="string"), "rule": nullable_str,  # type: ignore[arg-type]
                              "details": Schema(type="object")})  # type: ignore[arg-type]
    return Schema(type="object", required=["error"], additional_properties=False,  # type: ignore[arg-type]
                  properties={"error": body})


def _add_error_shape(doc: OpenAPI) -> None:
    if doc.components.schemas is None or ERROR_SCHEMA in doc.components.schemas:
        return
    doc.components.schemas[ERROR_SCHEMA] = _error_schema()
    content = {"application/json": OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{ERROR_SCHEMA}"))}
    for item in (doc.paths or {}).values():
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses if operation.responses is not None else {}
            for status in [s for s in responses if s[:1] in ("4", "5")]:
                responses[status] = OpenAPIResponse(description=responses[status].description, content=content)  # type: ignore[union-attr]
            for response in responses.values():
                _http_date_headers(response)
            responses["default"] = OpenAPIResponse(description="An error, in the one error shape", content=content)
            operation.responses = responses


def _http_date_headers(response: Any) -> None:
    """Litestar documents a file's ``Last-Modified`` as an ISO ``date-time``; it is an HTTP-date
    (``Sun, 06 Dec 2026 00:14:34 GMT``), so the format is dropped from the document."""
    for name, header in (getattr(response, "headers", None) or {}).items():
        schema = getattr(header, "schema", None)
        if name.lower() == "last-modified" and isinstance(schema, Schema) and schema.format is not None:
            schema.format = None
            header.description = "Last modification time, as an HTTP-date"


class _ErrorShapeOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, with the one error shape added to the document it builds."""

    __slots__ = ()

    def _build_openapi(self) -> OpenAPI:
        doc = super()._build_openapi()
        _add_error_shape(doc)
        return doc


def document_errors(app: Litestar) -> None:
    """State the one error shape for every error status of every operation.

    Why: Litestar documents its own ``ValidationException`` body (``status_code``,
    ``detail``) for 400, which this API never sends, and documents no other error status.
    Clients generated from the document (and contract fuzzers) would then reject every real
    error body. Each operation's 4xx/5xx responses and its ``default`` response point at the
    ``Error`` schema instead (and file responses' ``Last-Modified`` is documented as the
    HTTP-date it is). The app builds its document lazily (on the first docs request),
    so the plugin's build step is extended rather than the document built here.
    """
    plugin = app.plugins.get(OpenAPIPlugin)
    plugin.__class__ = _ErrorShapeOpenAPIPlugin


def asset_routes() -> list[Any]:
    """Static route serving exactly the Swagger UI files the page needs."""
    folder = assets_dir()
    missing = [f for f in _ASSET_FILES if not (folder / f).is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui-py lacks {missing}")
    return [create_static_files_router(path=ASSETS_PATH, directories=[folder], include_in_schema=False,
                                       name="docs_assets", opt={"public": True})]
