"""board indexes: the unit board's lists and counts read index entries only, not a million rows
(benchmarks/README.md, "A million cases")

Revision ID: 0013_board_indexes
Revises: 0012_model_registry
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_board_indexes"
down_revision: str | None = "0012_model_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # per unit: open / overdue counts, and the cases being handled by overdue and deadline (with the id, so
    # the page's ids come from the index alone)
    op.create_index("ix_cases_board", "cases", ["status", "unit_id", "overdue", "deadline_at", "id"])
    # to dispatch / to verify, newest first, and the review queue's keyset order: index-only
    op.create_index("ix_cases_status_created_id", "cases", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_cases_status_created_id", table_name="cases")
    op.drop_index("ix_cases_board", table_name="cases")
