"""Routes of the auth feature."""

from typing import Any

ROUTES: list[Any] = []
