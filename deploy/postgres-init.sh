#!/bin/sh
# First start of the PostgreSQL container: create Dagster's storage database next to the
# control database (POSTGRES_DB), both owned by POSTGRES_USER.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
SELECT 'CREATE DATABASE "${DAGSTER_PG_DB}" OWNER "${POSTGRES_USER}"'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${DAGSTER_PG_DB}')\gexec
SQL
