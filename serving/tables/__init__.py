"""The tables layer: what every serving feature knows about a table.

Why a layer of its own: the catalog, queries, sampling, artifacts and sync features all
name tables, check grants, read the served version and describe tables. Those facts live
here once, below the features, so no feature imports another (``tests/test_layering.py``).

- ``names.py``: quoting and resolving a written name to one granted key;
- ``served.py``: the served-tables provider (grants of a caller, the current manifest),
  ``resolve_table`` and the one "not found or not granted" answer;
- ``describe.py``: the one description of a table (the catalog entry);
- ``platform.py``: the engine and filter guard that server-built SQL (samples, profiles) runs on;
- ``hooks.py``: where two features meet, through functions registered at start-up.
"""
