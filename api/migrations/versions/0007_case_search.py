"""case search: indexes for the list's keyset orders, a unit handler's list and recurrence filters

Revision ID: 0007_case_search
Revises: 0006_static_change
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_case_search"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0006_static_change"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns): each keyset order is (sort column, id), so a page is an index range scan.
INDEXES: tuple[tuple[str, list[str]], ...] = (
    ("ix_cases_created_id", ["created_at", "id"]),
    ("ix_cases_updated_id", ["updated_at", "id"]),
    ("ix_cases_deadline_id", ["deadline_at", "id"]),
    ("ix_cases_first_seen_id", ["first_seen_at", "id"]),
    ("ix_cases_unit_created_id", ["unit_id", "created_at", "id"]),
    ("ix_cases_recurrence_of", ["recurrence_of_id"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "cases", columns)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="cases")
