"""``bench/REPORT.md`` and its plots, from the records ``python -m bench`` keeps in ``bench/results/``.

Why a separate module: the report can be rebuilt (``python -m bench --report-only``) without
re-running an hour of benchmarks, and every figure in it comes from a kept record, never
from text typed by hand.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

VERSIONED = ("duckdb", "dagster", "litestar", "pyarrow", "sqlglot", "snowflake-connector-python", "fakesnow", "locust")


def _machine() -> dict[str, Any]:
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": model,
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _load(results: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}


def _fig(records: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    figures = records.get(name, {}).get("figures")
    return figures if isinstance(figures, dict) else {}


def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


# --- plots -------------------------------------------------------------------------------------

def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sync(sync: dict[str, Any], out: Path) -> str | None:
    systems = {n: s for n, s in (sync.get("systems") or {}).items() if "rows_per_s" in s}
    if not systems:
        return None
    plt = _plt()
    names = list(systems)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar(names, [systems[n]["rows_per_s"] for n in names], color="#4C72B0")
    ax1.set_title(f"Sync of {sync.get('rows', 0):,} rows: rows/s (higher is better)")
    ax2.bar(names, [systems[n]["peak_rss_mb"] for n in names], color="#DD8452")
    ax2.set_title("Peak RSS, MB (lower is better)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=15)
    fig.tight_layout()
    fig.savefig(out / "sync.png", dpi=110)
    plt.close(fig)
    return "sync.png"


def plot_serving(serving: dict[str, Any], out: Path) -> list[str]:
    cases = serving.get("cases") or {}
    if not cases:
        return []
    plt = _plt()
    systems = [s for s in ("ours", "bare", "datasette") if any(k.startswith(s + "_") for k in cases)]
    keys = sorted({k.split("_", 1)[1] for k in cases})
    made = []
    for metric, title, name in (("rps", "Requests/s (higher is better)", "serving_throughput.png"),
                                ("p50_ms", "Latency p50 and p99, ms (log scale)", "serving_latency.png")):
        fig, ax = plt.subplots(figsize=(10, 3.8))
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            xs = [j + i * width for j in range(len(keys))]
            vals = [cases.get(f"{system}_{k}", {}).get(metric, 0) for k in keys]
            ax.bar(xs, vals, width, label=f"{system} p50" if metric == "p50_ms" else system)
            if metric == "p50_ms":
                p99 = [cases.get(f"{system}_{k}", {}).get("p99_ms", 0) for k in keys]
                ax.scatter(xs, p99, marker="_", s=300, color="black", zorder=3,
                           label="p99" if i == 0 else None)
        if metric == "p50_ms":
            ax.set_yscale("log")
        ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(keys))], keys)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)
    return made


def plot_load(load: dict[str, Any], memory_csv: Path, out: Path) -> list[str]:
    made = []
    plt = _plt()
    endpoints = load.get("endpoints") or {}
    if endpoints:
        names = sorted(endpoints)
        fig, ax = plt.subplots(figsize=(10, 4))
        ys = range(len(names))
        ax.barh([y + 0.2 for y in ys], [endpoints[n]["p50_ms"] for n in names], 0.4, label="p50")
        ax.barh([y - 0.2 for y in ys], [endpoints[n]["p99_ms"] for n in names], 0.4, label="p99")
        ax.set_yticks(list(ys), names)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log scale)")
        ax.set_title(f"Load: {load.get('users')} agents for {load.get('duration_s', 0):.0f} s, latency per endpoint")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "load_latency.png", dpi=110)
        plt.close(fig)
        made.append("load_latency.png")
    if memory_csv.exists():
        with open(memory_csv, newline="") as f:
            rows = [(float(t), float(m)) for t, m in list(csv.reader(f))[1:]]
        if rows:
            fig, ax = plt.subplots(figsize=(10, 3.2))
            ax.plot([t for t, _ in rows], [m for _, m in rows])
            ax.set_xlabel("seconds into the run")
            ax.set_ylabel("API RSS, MB")
            ax.set_title("API memory over the load run (every worker process)")
            fig.tight_layout()
            fig.savefig(out / "load_memory.png", dpi=110)
            plt.close(fig)
            made.append("load_memory.png")
    return made


# --- the document -------------------------------------------------------------------------------

def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_num(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _scalars(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every scalar figure, nested ones under dotted names (a baseline's figures, a scenario's counts)."""
    rows: list[tuple[str, Any]] = []
    for k, v in figures.items():
        if isinstance(v, dict):
            rows += _scalars(v, f"{prefix}{k}.")
        elif isinstance(v, int | float | str | bool) and k != "load_average":
            rows.append((f"{prefix}{k}", v))
    return rows


def write(results: Path, target: Path, plots: Path) -> Path:
    records = _load(results)
    plots.mkdir(parents=True, exist_ok=True)
    root = target.parent.parent
    sync, serving, load = _fig(records, "compare_sync"), _fig(records, "compare_serving"), _fig(records, "load")
    images = {"sync": plot_sync(sync, plots), "serving": plot_serving(serving, plots),
              "load": plot_load(load, results / "load" / "memory.csv", plots)}
    machine, versions = _machine(), _versions()
    quick = any(r.get("quick") for r in records.values())
    parts = [
        "# Benchmark report",
        "",
        f"Made by `python -m bench` on {time.strftime('%Y-%m-%d', time.gmtime())} at commit `{_commit(root)}`."
        + (" **Quick run: small sizes, not the figures to quote.**" if quick else ""),
        "Every figure below comes from the records in `bench/results/`; rebuild this page with "
        "`python -m bench --report-only`. Each benchmark's own docstring says what it measures.",
        "",
        "## Machine and versions",
        "",
        _table(("what", "value"), [*machine.items(), *versions.items()]),
        "",
    ]
    if sync:
        systems = sync.get("systems", {})
        parts += ["## Sync: one table into DuckDB, side by side", "",
                  f"{sync.get('rows', 0):,} rows of the demo orders table (12 columns) on the local stand-in "
                  "(`bench/compare_sync.py`). `types kept` counts the columns whose DuckDB type holds every "
                  "value of the source type.", "",
                  _table(("system", "rows/s", "vs limit", "peak RSS MB", "types kept", "decimals exact", "type changes"),
                         [(n, "failed", "-", "-", "-", "-", s["failed"]) if "failed" in s else
                          (n, s["rows_per_s"], sync.get("ratio_vs_limit", {}).get(n), s["peak_rss_mb"],
                           s.get("types_kept", "-"), s.get("decimals_exact", "-"),
                           "; ".join(f"{k}: {v}" for k, v in (s.get("type_changes") or {}).items()) or "-")
                          for n, s in systems.items()]), ""]
        if images["sync"]:
            parts += [f"![sync](report/{images['sync']})", ""]
    if serving:
        cases = serving.get("cases", {})
        parts += ["## Serving: the same queries, side by side", "",
                  "A point query by key and a group-by aggregate over the same 1,000,000 rows, at concurrency 1 "
                  "and 16 (`bench/compare_serving.py`, load from `wrk`). `ours` has auth, the SQL guard and the "
                  "audit on; `bare` is the limit; Datasette serves a SQLite copy.", "",
                  _table(("case", "requests/s", "p50 ms", "p99 ms", "p50 vs bare"),
                         [(k, v["rps"], v["p50_ms"], v["p99_ms"], serving.get("p50_ratio_vs_bare", {}).get(k, 1.0))
                          for k, v in sorted(cases.items())]), ""]
        parts += [f"![serving](report/{name})" for name in images["serving"]] + [""]
    if load:
        parts += ["## Load: concurrent agents with data swapped under them", "",
                  f"{load.get('users')} agents for {load.get('duration_s', 0):.0f} s (`bench/load.py`, locust), "
                  f"{len(load.get('swaps') or [])} materializations swapping served data during the run; "
                  f"{_num(load.get('requests'))} requests at {_num(load.get('rps'))}/s.", "",
                  _table(("endpoint", "requests", "failures", "p50 ms", "p99 ms"),
                         [(n, e["requests"], e["failures"], e["p50_ms"], e["p99_ms"])
                          for n, e in sorted((load.get("endpoints") or {}).items())]), "",
                  _table(("target", "met"), list((load.get("targets") or {}).items())), "",
                  f"Errors by kind: {json.dumps(load.get('errors_by_kind') or {})}; answered 429 (limits, not "
                  f"errors): {json.dumps(load.get('throttled') or {})}; API memory (MB): "
                  f"{json.dumps(load.get('rss_mb') or {})}.", ""]
        parts += [f"![load](report/{name})" for name in images["load"]] + [""]
    parts += ["## Every benchmark's figures", ""]
    for name, record in records.items():
        figures = record.get("figures") or {}
        load = record.get("load_average_before") or []
        status = (f"skipped: {record['skipped']}" if record.get("skipped") else
                  f"exit {record.get('exit_code')} in {record.get('duration_s')} s, started "
                  f"{record.get('started_at', '?')} at commit {record.get('commit', '?')}, load average before "
                  f"{_num(load[0]) if load else '?'}")
        parts += [f"### {name} (`{record.get('script')}`, {status})", ""]
        if figures:
            parts += [_table(("figure", "value"), _scalars(figures)), ""]
        elif record.get("output_tail"):
            parts += ["```", str(record["output_tail"])[-1200:], "```", ""]
    target.write_text("\n".join(parts).rstrip() + "\n")
    return target
