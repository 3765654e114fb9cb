"""served versions in object storage

With ``SERVED_STORAGE=s3`` the control database, not a file, says which version of a table
readers use: ``served_versions`` holds every uploaded version (manifest, files with size and
sha256), ``served_current`` the one current version per table, switched by compare-and-set
in the transaction that inserts the new version.

Revision ID: 0006_served_objects
Revises: 0007_agent_interfaces
Create Date: 2026-12-06 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_served_objects"
down_revision: str | None = "0005_request_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "served_versions",
        sa.Column("table_key", sa.String(length=400), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("table_key", "version"),
    )
    op.create_index("ix_served_versions_superseded_at", "served_versions", ["superseded_at"])
    op.create_table(
        "served_current",
        sa.Column("table_key", sa.String(length=400), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("table_key"),
    )


def downgrade() -> None:
    op.drop_table("served_current")
    op.drop_index("ix_served_versions_superseded_at", table_name="served_versions")
    op.drop_table("served_versions")
