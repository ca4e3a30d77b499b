"""search at a million cases: trigram indexes for the free text (PostgreSQL), keyset indexes per filter

Revision ID: 0014_search_scale
Revises: 0013_board_indexes
Create Date: 2026-12-02 07:00:00

Free text (api.case_search) is a substring match (``ILIKE '%text%'``). A B-tree cannot serve that, so on
PostgreSQL each searched text column gets a pg_trgm GIN index; the extension ships with the server package
(postgresql-contrib on older distributions) and is a trusted extension, so the store's owner may create it.
Where it cannot be created the migration stops and says how to install it: without the indexes a search
reads every case. SQLite keeps its LIKE scan (a single-host store with far fewer cases).
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import exc, text

revision: str = "0014_search_scale"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0013_board_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, column, partial WHERE): the columns free text reads.
TRIGRAM: tuple[tuple[str, str, str, str | None], ...] = (
    ("ix_places_name_trgm", "places", "name", None),
    ("ix_places_key_trgm", "places", "key", None),
    ("ix_cases_description_trgm", "cases", "description", "description <> ''"),
    ("ix_cases_address_trgm", "cases", "address", "address IS NOT NULL"),
    # Most timeline rows carry no note: only the ones that do are indexed.
    ("ix_audit_events_note_trgm", "audit_events", "note", "note IS NOT NULL"),
)
# Filter + keyset order: a page (or the CSV) of one type or camera walks one of these in order instead of
# reading the created-order index past every other case. Status and place have (status, created_at) and
# few cases per place; incremental sort finishes the (.., id) order.
KEYSET: tuple[tuple[str, list[str]], ...] = (
    ("ix_cases_violation_created_id", ["violation_code", "created_at", "id"]),
    ("ix_cases_camera_created_id", ["camera_code", "created_at", "id"]),
)

NO_TRGM = (
    "the PostgreSQL extension pg_trgm (trigram indexes for the case search's free text) could not be "
    "created: {error}. Install the server's contrib package (Debian/Ubuntu: postgresql-contrib, part of "
    "postgresql-15 and later) or have a superuser run `CREATE EXTENSION pg_trgm` in this database, then "
    "run `streetwatch api migrate` again."
)


def _create_trgm() -> None:
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except exc.DBAPIError as error:
        raise RuntimeError(NO_TRGM.format(error=str(error.orig).strip().splitlines()[0])) from None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _create_trgm()
        for name, table, column, where in TRIGRAM:
            op.create_index(
                name,
                table,
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
                postgresql_where=text(where) if where else None,
            )
    for name, columns in KEYSET:
        op.create_index(name, "cases", columns)


def downgrade() -> None:
    for name, _ in reversed(KEYSET):
        op.drop_index(name, table_name="cases")
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _, _ in reversed(TRIGRAM):
            op.drop_index(name, table_name=table)
        # The extension stays: other databases' objects or an operator's own may use it.
