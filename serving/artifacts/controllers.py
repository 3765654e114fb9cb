"""Routes of the artifacts feature."""

from typing import Any

ROUTES: list[Any] = []
