"""Long-lived parts of the auth feature: the token codec and the identity cache.

Why in the lifespan: the signing secret may be generated (and persisted) under
AGENTS_DATA_HOME, which must not happen at import time.
"""

from __future__ import annotations

from serving.auth.deps import provide_caller
from serving.lib.guards import provide_resolver
from serving.lib.identity import CODEC, IDENTITY, IdentityStore
from serving.lib.services import Services
from serving.lib.tokens import TokenCodec, codec_for


async def startup(services: Services) -> None:
    if not isinstance(services.parts.get(CODEC), TokenCodec):
        services.parts[CODEC] = codec_for(services.settings)
    if not isinstance(services.parts.get(IDENTITY), IdentityStore):
        services.parts[IDENTITY] = IdentityStore(services.control_url, services.settings.auth.token_cache_ttl_s)
    provide_resolver(services, provide_caller)  # route guards resolve the caller through it


async def shutdown(services: Services) -> None:
    identity = services.parts.get(IDENTITY)
    if isinstance(identity, IdentityStore):
        identity.invalidate()
