"""handover minutes: when the signed minutes came back (biên bản đã ký)

Revision ID: 0005_minutes
Revises: 0002
Create Date: 2026-12-03 14:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types


revision = '0005_minutes'
down_revision = '0002'
branch_labels = None
depends_on = None

_OPEN = "minutes_signed_at IS NULL AND status = 'active'"


def upgrade() -> None:
    with op.batch_alter_table('handover', schema=None) as batch_op:
        batch_op.add_column(sa.Column('minutes_signed_at', storage.types.UTCDateTime(), nullable=True))
        batch_op.create_index(
            'ix_handover_minutes_open', ['handed_over_on'], unique=False,
            sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN),
        )
    # Handovers recorded with a minutes photo before this column existed count as signed from their creation.
    op.execute(
        "UPDATE handover SET minutes_signed_at = created_at WHERE EXISTS "
        "(SELECT 1 FROM handover_photo hp WHERE hp.handover_id = handover.id AND hp.kind = 'minutes')"
    )


def downgrade() -> None:
    with op.batch_alter_table('handover', schema=None) as batch_op:
        batch_op.drop_index('ix_handover_minutes_open', sqlite_where=sa.text(_OPEN), postgresql_where=sa.text(_OPEN))
        batch_op.drop_column('minutes_signed_at')
