"""The report pipeline: ``bench/compare_sync.py``'s fidelity rule and ``bench/report.py`` from kept records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.compare_sync import fidelity
from bench.report import write


def test_fidelity_counts_types_that_hold_every_source_value() -> None:
    source = {"ID": "DECIMAL(18,0)", "PRICE": "DECIMAL(10,2)", "AT": "TIMESTAMP", "NAME": "VARCHAR"}
    kept = fidelity(source, {"id": "BIGINT", "price": "DECIMAL(12,2)", "at": "TIMESTAMP_NS", "name": "VARCHAR"})
    assert kept == {"types_kept": "4/4", "type_changes": {}, "decimals_exact": True}
    narrowed = fidelity(source, {"ID": "DECIMAL(5,0)", "PRICE": "DOUBLE", "AT": "TIMESTAMP WITH TIME ZONE", "NAME": "VARCHAR"})
    assert narrowed["types_kept"] == "1/4"
    assert narrowed["decimals_exact"] is False
    assert set(narrowed["type_changes"]) == {"ID", "PRICE", "AT"}
    assert fidelity({"N": "DECIMAL(20,0)"}, {"N": "BIGINT"})["types_kept"] == "0/1"  # 20 digits overflow BIGINT


def test_report_is_built_from_the_kept_records(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "load").mkdir(parents=True)
    (results / "load" / "memory.csv").write_text("t_s,rss_mb\n1,100\n2,101\n3,102\n")
    sync = {"rows": 1000, "systems": {"limit": {"rows": 1000, "seconds": 1.0, "rows_per_s": 1000, "peak_rss_mb": 10.0},
                                      "naive_dagster": {"failed": "cast overflow"}}, "ratio_vs_limit": {"limit": 1.0}}
    load = {"users": 5, "duration_s": 10, "requests": 10, "rps": 1.0, "swaps": [{"duration_s": 1}],
            "endpoints": {"query: point": {"requests": 10, "failures": 0, "p50_ms": 3.0, "p99_ms": 9.0}},
            "targets": {"small_p99_le_2s": True}, "rss_mb": {"end": 102.0}}
    for name, figures in (("compare_sync", sync), ("load", load), ("export", None)):
        record = {"name": name, "script": f"bench/{name}.py", "exit_code": 0 if figures else 1, "figures": figures,
                  **({} if figures else {"output_tail": "Traceback: boom"})}
        (results / f"{name}.json").write_text(json.dumps(record))
    (tmp_path / "bench").mkdir()
    page = write(results, tmp_path / "bench" / "REPORT.md", tmp_path / "bench" / "report").read_text()
    assert "| limit | 1,000 | 1.00 | 10.00 |" in page
    assert "| naive_dagster | failed |" in page
    assert "cast overflow" in page
    assert "| query: point | 10 | 0 | 3.00 | 9.00 |" in page
    assert "Traceback: boom" in page  # a failed benchmark shows why, not a blank
    assert {p.name for p in (tmp_path / "bench" / "report").iterdir()} == {"sync.png", "load_latency.png", "load_memory.png"}
