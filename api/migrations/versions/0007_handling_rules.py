"""handling rules: per violation type, a photo required to resolve and a start required before resolving

Revision ID: 0007_handling_rules
Revises: 0006_static_change
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_handling_rules"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0006_static_change"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The pipeline types whose handling is photographed by default (api.reference.violation_types).
PHOTO_BY_DEFAULT = ("exposed_garbage", "street_stall")


def upgrade() -> None:
    with op.batch_alter_table("violation_types") as batch:
        batch.add_column(
            sa.Column("photo_required_to_resolve", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column(
                "start_required_before_resolve", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    types = sa.table("violation_types", sa.column("pipeline_type"), sa.column("photo_required_to_resolve"))
    op.execute(
        types.update()
        .where(types.c.pipeline_type.in_(PHOTO_BY_DEFAULT))
        .values(photo_required_to_resolve=sa.true())
    )


def downgrade() -> None:
    with op.batch_alter_table("violation_types") as batch:
        batch.drop_column("start_required_before_resolve")
        batch.drop_column("photo_required_to_resolve")
