"""case search: indexes for the list's keyset orders, a unit handler's list
(recurrences use ix_cases_recurrence_of_id of 0009)

Revision ID: 0010_case_search
Revises: 0009_city_scale
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_case_search"
down_revision: str | None = "0009_city_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns): each keyset order is (sort column, id), so a page is an index range scan.
INDEXES: tuple[tuple[str, list[str]], ...] = (
    ("ix_cases_created_id", ["created_at", "id"]),
    ("ix_cases_updated_id", ["updated_at", "id"]),
    ("ix_cases_deadline_id", ["deadline_at", "id"]),
    ("ix_cases_first_seen_id", ["first_seen_at", "id"]),
    ("ix_cases_unit_created_id", ["unit_id", "created_at", "id"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "cases", columns)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="cases")
