"""several workers: each chat account remembers the newest message applied (ordering across workers)

Revision ID: 0008_workers
Revises: 0007_web_province
Create Date: 2026-12-03 14:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_workers"
down_revision = "0007_web_province"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_identity") as batch:
        batch.add_column(sa.Column("last_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chat_identity") as batch:
        batch.drop_column("last_seq")
