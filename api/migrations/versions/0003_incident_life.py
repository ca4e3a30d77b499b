"""incident life: later sightings and ends of an incident, evidence scores, every zone rule field

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sighting_count", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("last_seen_at", api.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("ended_at", api.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", api.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=True))
    with op.batch_alter_table("zones", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("anchor", sa.String(length=16), nullable=False, server_default="bottom_center")
        )
    op.create_table(
        "incident_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("sighting_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", api.models.UTCDateTime(), nullable=False),
        sa.Column("sighting_count", sa.Integer(), nullable=False),
        sa.Column("received_at", api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sighting_id"], ["sightings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(op.f("ix_incident_updates_sighting_id"), "incident_updates", ["sighting_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_incident_updates_sighting_id"), table_name="incident_updates")
    op.drop_table("incident_updates")
    with op.batch_alter_table("zones", schema=None) as batch_op:
        batch_op.drop_column("anchor")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("score")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("sighting_count")
