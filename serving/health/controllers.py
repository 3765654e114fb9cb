"""Routes of the health feature."""

from typing import Any

ROUTES: list[Any] = []
