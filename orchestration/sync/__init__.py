"""The sync engine: Snowflake table slices, as Arrow, into a new served DuckDB version.

``engine.sync_table`` is the whole materialization without Dagster, so the asset, the
benchmark and the crash tests all run the same code. It runs five steps, one module each
(``plan``, ``write``, the checks in ``verdicts``, then ``publish`` for the profile and the
publication); ``extract``, ``load``, ``types`` and ``drift`` are the parts they share.
"""
