"""Long-lived clients of one API process, created in the app's lifespan and injected.

Why a small registry instead of globals: each feature (queries, artifacts, sync …)
owns its client type and builds it in its own ``startup(services)`` hook; handlers get
them through typed accessors of that feature. Nothing connects at import time, and
tests can pass a ready ``Services`` to ``create_app``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from shared.settings import Settings

T = TypeVar("T")


@dataclasses.dataclass
class Services:
    settings: Settings
    parts: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def control_url(self) -> str:
        return self.settings.control_url

    def get(self, name: str, kind: type[T]) -> T:
        value = self.parts.get(name)
        if not isinstance(value, kind):
            raise RuntimeError(f"service {name!r} is not started")
        return value
