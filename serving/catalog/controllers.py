"""Routes of the catalog feature."""

from typing import Any

ROUTES: list[Any] = []
