"""board scale: the cases being handled in deadline order, a small partial index the board's three
sections page through (benchmarks/README.md, "A million cases")

Revision ID: 0016_board_scale
Revises: 0015_daily_stats
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_board_scale"
down_revision: str | None = "0015_daily_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HANDLING = sa.text("status IN ('dispatched', 'in_progress')")


def upgrade() -> None:
    # ~2% of the cases (17,000 of a million): each section (overdue, due soon, the rest) is a range of it
    # in the board's order, and the page's ids and the overdue flag come from the index alone
    op.create_index(
        "ix_cases_handling_deadline",
        "cases",
        ["deadline_at", "id", "overdue"],
        postgresql_where=HANDLING,
        sqlite_where=HANDLING,
    )


def downgrade() -> None:
    op.drop_index("ix_cases_handling_deadline", table_name="cases")
