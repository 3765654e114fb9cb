"""Helpers of the operability tests: reading Prometheus text, scanning logs for secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in Prometheus text format whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):].rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def leaks(paths: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """``file: secret`` for every secret found in any of the files (empty: none leaked)."""
    found = []
    wanted = [s for s in secrets if s]
    for path in paths:
        text = path.read_text(errors="replace")
        found.extend(f"{path.name}: {s[:12]}…" for s in wanted if s in text)
    return found


def lines_above_info(text: str) -> list[str]:
    """Log lines (text or JSON format) at WARNING or above."""
    pattern = re.compile(r'( (WARNING|ERROR|CRITICAL) |"level": "(warning|error|critical)")')
    return [line for line in text.splitlines() if pattern.search(line)]
