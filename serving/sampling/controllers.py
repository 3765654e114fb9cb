"""Routes of the sampling feature."""

from typing import Any

ROUTES: list[Any] = []
