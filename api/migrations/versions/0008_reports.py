"""pushed reports: unit e-mail addresses, e-mail deliveries (maybe without a unit), report runs and the
deadline-warning mark on cases

Revision ID: 0008_reports
Revises: 0007_handling_rules
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0008_reports"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0007_handling_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("warned_deadline_at", api.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("recipient", sa.String(length=254), nullable=True))
        batch.alter_column("unit_id", existing_type=sa.Integer(), nullable=True)
    op.create_table(
        "report_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("created_at", api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "period", "recipient", name="uq_report_runs_key"),
    )


def downgrade() -> None:
    op.drop_table("report_runs")
    op.execute("DELETE FROM deliveries WHERE unit_id IS NULL")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("unit_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("recipient")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("warned_deadline_at")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("email")
