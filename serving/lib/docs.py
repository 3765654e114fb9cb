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
from pathlib import Path
from typing import Any

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
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


def asset_routes() -> list[Any]:
    """Static route serving exactly the Swagger UI files the page needs."""
    folder = assets_dir()
    missing = [f for f in _ASSET_FILES if not (folder / f).is_file()]
    if missing:
        raise RuntimeError(f"swagger-ui-py lacks {missing}")
    return [create_static_files_router(path=ASSETS_PATH, directories=[folder], include_in_schema=False,
                                       name="docs_assets", opt={"public": True})]
