"""one live registration per table key

Two simultaneous registrations of the same new table could both find no live row and
insert one each. A partial unique index on ``key`` over live rows (``deleted_at IS
NULL``) makes the database refuse the second; soft-deleted rows stay as history, any
number per key. Existing duplicates are soft-deleted first (the newest row is kept).
Partial indexes exist on SQLite and PostgreSQL alike.

Revision ID: 0002_lifecycle
Revises: 0001
Create Date: 2026-12-05 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_lifecycle"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_registered_tables_live_key"
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.execute(
        "UPDATE registered_tables SET deleted_at = CURRENT_TIMESTAMP "
        "WHERE deleted_at IS NULL AND id NOT IN "
        "(SELECT max(id) FROM registered_tables WHERE deleted_at IS NULL GROUP BY key)"
    )
    op.create_index(INDEX, "registered_tables", ["key"], unique=True, sqlite_where=LIVE, postgresql_where=LIVE)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="registered_tables")
