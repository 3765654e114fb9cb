"""Routes of the sync feature."""

from typing import Any

ROUTES: list[Any] = []
