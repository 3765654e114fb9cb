"""Long-lived parts of the Dagster UI proxy: the admission rule and the upstream HTTP client.

Why one pooled client per process: every page of the UI makes dozens of requests
(assets, GraphQL polling), and a connection per request to the webserver would cost
more than the forwarding itself. Read timeouts are generous (a GraphQL query over many
runs can take seconds) but bounded.
"""

from __future__ import annotations

import dataclasses

import httpx

from serving.dagster_ui.access import UiAccess
from serving.dagster_ui.proxy import Upstream
from serving.lib.identity import get_codec, get_identity
from serving.lib.services import Services

UI = "dagster_ui"


@dataclasses.dataclass
class DagsterUi:
    access: UiAccess
    upstream: Upstream
    client: httpx.AsyncClient


def get_ui(services: Services) -> DagsterUi:
    return services.get(UI, DagsterUi)


async def startup(services: Services) -> None:
    if isinstance(services.parts.get(UI), DagsterUi):
        return
    settings = services.settings
    access = UiAccess.build(settings, get_codec(services), get_identity(services))
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0), follow_redirects=False, trust_env=False,
                               limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
    services.parts[UI] = DagsterUi(access=access, upstream=Upstream.from_settings(settings.dagster), client=client)


async def shutdown(services: Services) -> None:
    ui = services.parts.pop(UI, None)
    if isinstance(ui, DagsterUi):
        await ui.client.aclose()
