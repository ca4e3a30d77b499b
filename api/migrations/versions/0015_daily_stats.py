"""the statistics' daily summary: daily_stats, daily_place_stats and their state row, filled from the cases

Revision ID: 0015_daily_stats
Revises: 0014_search_scale
Create Date: 2026-12-02 10:00:00

The period statistics (api.stats) add these rows up instead of reading every case of the period;
api.daily_stats keeps them at every flush that changes a case. The fill is api.daily_stats.rebuild, the one
SQL that builds the summary from the cases (in the working calendar's time zone), also used by the
benchmarks' bulk generator and when the calendar's zone changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models
from api.daily_stats import rebuild

revision: str = "0015_daily_stats"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0014_search_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = [*api.models.DAILY_COUNTS]
MICROSECONDS = ("dispatch_us", "close_us")


def _count(name: str) -> sa.Column[int]:
    kind = sa.BigInteger() if name in MICROSECONDS else sa.Integer()
    return sa.Column(name, kind, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "daily_stats",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("violation_code", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        *[_count(name) for name in COUNTS],
        sa.PrimaryKeyConstraint("day", "unit_id", "violation_code", "status", name="pk_daily_stats"),
    )
    op.create_table(
        "daily_place_stats",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("place_id", sa.Integer(), nullable=False),
        *[_count(name) for name in api.models.DAILY_PLACE_COUNTS],
        sa.PrimaryKeyConstraint("day", "unit_id", "place_id", name="pk_daily_place_stats"),
    )
    op.create_table(
        "daily_stats_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("rebuilt_at", api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_daily_stats_state"),
    )
    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("daily_stats_state")
    op.drop_table("daily_place_stats")
    op.drop_table("daily_stats")
