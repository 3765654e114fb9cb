"""False rejections: the guard refuses less than 1% of a fixed corpus of legitimate queries.

``legit_queries.sql`` (1,200 analytical queries over the demo schema, made once by
``make_legit_queries.py`` and checked in) is run through ``check_sql`` with all four
demo tables granted. Every corpus query first runs on a plain DuckDB holding the demo
tables (so the corpus only holds valid SQL and a refusal is a real false rejection), and
every accepted query's rewritten SQL runs there too. The refused ones are listed.
"""

from __future__ import annotations

from collections import Counter

import pytest

from serving.lib.errors import QueryRejected
from serving.queries.guard import check_sql
from tests.fuzz.make_legit_queries import generate, read
from tests.fuzz.sql_world import KEYS, demo_duckdb

MAX_FALSE_REJECTION_RATE = 0.01


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return read()


def test_the_corpus_is_large_distinct_and_checked_in(corpus: list[str]) -> None:
    assert len(corpus) >= 1000
    assert len(set(corpus)) == len(corpus)
    assert corpus == generate(), "legit_queries.sql is stale: run tests/fuzz/make_legit_queries.py and commit it"


def test_false_rejection_rate_below_one_percent(corpus: list[str]) -> None:
    con = demo_duckdb()
    grants = frozenset(KEYS.values())
    invalid: list[str] = []
    rejected: list[str] = []
    failed_after_rewrite: list[str] = []
    for sql in corpus:
        try:
            con.execute(sql).fetchall()
        except Exception as e:  # the corpus itself must be valid DuckDB SQL
            invalid.append(f"{sql}\n    -> {str(e).splitlines()[0]}")
            continue
        try:
            guarded = check_sql(sql, grants)
        except QueryRejected as e:
            rejected.append(f"[{e.rule}] {e.message}\n    {sql}")
            continue
        try:
            con.execute(guarded.sql).fetchall()
        except Exception as e:
            failed_after_rewrite.append(f"{sql}\n    rewritten: {guarded.sql}\n    -> {str(e).splitlines()[0]}")
    con.close()
    assert not invalid, "corpus queries DuckDB itself refuses:\n" + "\n".join(invalid[:20])
    rate = len(rejected) / len(corpus)
    rules = Counter(line.split("]")[0][1:] for line in rejected)
    print(f"false rejections: {len(rejected)}/{len(corpus)} ({rate:.2%}) by rule {dict(rules)}")
    for line in rejected:
        print(line)
    assert rate < MAX_FALSE_REJECTION_RATE, (f"{len(rejected)} of {len(corpus)} legitimate queries refused "
                                             f"({rate:.2%}):\n" + "\n".join(rejected))
    assert not failed_after_rewrite, "accepted queries that fail once rewritten:\n" + "\n".join(failed_after_rewrite[:20])
