"""Tables of any shape and values at the edges of their types, through real materializations:
the served table equals the source, value for value, or the run fails naming why.

Stand-in limits (docs/local-stand-in.md) are left out rather than faked: NUMBER(38,0) beyond
64 bits, nanosecond timestamps, TIMESTAMP_TZ offsets other than UTC.
"""

from __future__ import annotations

import datetime as dt
import math

from shared.settings import Settings
from tests.orchestration.conftest import Source, failure_message, materialization, materialize, rows


def test_a_table_of_hundreds_of_columns_is_published_with_every_value(source: Source, sync_settings: Settings) -> None:
    """The personal-data classification sampled every column in one reservoir scan, whose buffers
    for about 400 columns or more ran out of the writer's 64 MB on a single row: a wide table could
    never be published. It samples a bounded group of columns per scan now."""
    n = 600
    t = source.table("WIDE")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), {', '.join(f'C{i} NUMBER(18,0)' for i in range(n))})")
    source.sql(f"INSERT INTO {t} VALUES (1, {', '.join(str(4111111111111111 + i) for i in range(n))}), "
               f"(2, {', '.join('NULL' for _ in range(n))})")
    table = source.register("WIDE")
    result = materialize(table, sync_settings)
    assert result.success, failure_message(result)
    served = rows(sync_settings, table)
    assert served[0] == (1, *(4111111111111111 + i for i in range(n)))
    assert served[1] == (2, *(None for _ in range(n)))
    assert materialization(result)["personal_columns"] != ""


def test_edge_values_of_every_type_are_served_as_the_source_holds_them(source: Source, sync_settings: Settings) -> None:
    t = source.table("EDGES")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), F FLOAT, D DATE, TS TIMESTAMP_NTZ, N NUMBER(38,37), "
               "S VARCHAR, B BINARY, J VARIANT, BO BOOLEAN)")
    values = [
        "(1, 'NaN'::FLOAT, '0001-01-01', '0001-01-01 00:00:00', 1.2345678901234567890123456789012345678, "
        "'a' || CHR(0) || 'b', TO_BINARY('00FF', 'HEX'), PARSE_JSON('{\"a\": 123456789012345678901234567890}'), TRUE)",
        "(2, 'inf'::FLOAT, '9999-12-31', '9999-12-31 23:59:59.999999', -0.0000000000000000000000000000000000001, "
        "'', TO_BINARY('', 'HEX'), PARSE_JSON('null'), FALSE)",
        "(3, '-inf'::FLOAT, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        "(4, -0.0::FLOAT, '1970-01-01', '1970-01-01 00:00:00', 0, '🙂' || REPEAT('é', 70000), NULL, "
        "PARSE_JSON('9007199254740993'), NULL)",
    ]
    for v in values:
        source.sql(f"INSERT INTO {t} SELECT * FROM VALUES {v}")
    table = source.register("EDGES")
    result = materialize(table, sync_settings)
    assert result.success, failure_message(result)
    want = [tuple(r) for r in source.sql(f"SELECT ID, F, D, N, S, B, J, BO FROM {t} ORDER BY 1")]
    got = rows(sync_settings, table, "SELECT ID, F, D, N, S, B, J, BO FROM data ORDER BY 1")
    assert len(got) == len(want) == 4
    for g, w in zip(got, want, strict=True):
        f_got, f_want = g[1], w[1]
        assert (math.isnan(f_got) and math.isnan(f_want)) or (
            f_got == f_want and math.copysign(1, f_got) == math.copysign(1, f_want)), (g, w)
        assert g[2:4] == w[2:4]
        assert g[4] == w[4]
        assert (None if g[5] is None else bytes(g[5])) == (None if w[5] is None else bytes(w[5]))
        assert g[6] == w[6]  # JSON null ('null') stays apart from SQL NULL
        assert g[7] == w[7]
    assert rows(sync_settings, table, "SELECT TS FROM data WHERE ID IN (1, 2) ORDER BY ID") == [
        (dt.datetime(1, 1, 1),), (dt.datetime(9999, 12, 31, 23, 59, 59, 999999),)]
    assert materialization(result)["personal_data"]
