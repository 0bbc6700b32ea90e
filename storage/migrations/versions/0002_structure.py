"""flags keep their values (kind + params), worded when shown; conversations list the photo files they hold

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("files", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("conversation") as batch:
        batch.alter_column("files", existing_type=sa.JSON(), server_default=None)
    with op.batch_alter_table("flag") as batch:
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
    conn = op.get_bind()
    flag = sa.table("flag", sa.column("id", sa.Integer), sa.column("detail", sa.Text), sa.column("params", sa.JSON))
    # A flag written before keeps its sentence (core.vocabulary.flag_text shows "text" as it is).
    for row in conn.execute(sa.select(flag.c.id, flag.c.detail)).all():
        conn.execute(flag.update().where(flag.c.id == row.id).values(params={"text": row.detail}))
    with op.batch_alter_table("flag") as batch:
        batch.alter_column("params", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("detail")


def downgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("files")
    with op.batch_alter_table("flag") as batch:
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
    conn = op.get_bind()
    flag = sa.table("flag", sa.column("id", sa.Integer), sa.column("detail", sa.Text), sa.column("params", sa.JSON))
    for row in conn.execute(sa.select(flag.c.id, flag.c.params)).all():
        params = row.params if isinstance(row.params, dict) else json.loads(row.params or "{}")
        conn.execute(flag.update().where(flag.c.id == row.id).values(detail=params.get("text") or json.dumps(params)))
    with op.batch_alter_table("flag") as batch:
        batch.alter_column("detail", existing_type=sa.Text(), nullable=False)
        batch.drop_column("params")
