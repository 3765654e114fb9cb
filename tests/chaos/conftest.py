"""Chaos fixtures: the sync engine's private source database and settings, reused as they are."""

from tests.orchestration.conftest import source, sync_settings

__all__ = ["source", "sync_settings"]
