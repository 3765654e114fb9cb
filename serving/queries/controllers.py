"""Routes of the queries feature."""

from typing import Any

ROUTES: list[Any] = []
