"""Routes of the admin feature."""

from typing import Any

ROUTES: list[Any] = []
