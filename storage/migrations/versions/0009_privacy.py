"""children's data: consent date, retention purge marks, the append-only access log

Revision ID: 0009_privacy
Revises: 0008_workers
Create Date: 2026-12-03 14:40:00

Existing registrations get consent_at NULL: "consent not recorded", counted for the principal to complete.
birth_date becomes nullable: the retention purge removes it (purged_at says when).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types
from storage.access_log import PG_GUARD, PG_UNGUARD, SQLITE_GUARD, SQLITE_UNGUARD

revision = '0009_privacy'
down_revision = '0008_workers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('what', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=True),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('pupils', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index('ix_access_log_at', ['at'], unique=False)
        batch_op.create_index('ix_access_log_school_at', ['school_id', 'at'], unique=False)

    op.create_table('access_log_purge_gate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        # SQLite alters a column by copying the table; the DROP of the old copy would trip the handovers'
        # foreign keys to it. Alembic runs SQLite DDL outside a transaction, where this pragma takes effect.
        op.execute('PRAGMA foreign_keys = OFF')
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('purged_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('birth_date', existing_type=sa.Date(), nullable=True)
    if bind.dialect.name == 'sqlite':
        op.execute('PRAGMA foreign_keys = ON')

    for stmt in PG_GUARD if bind.dialect.name == 'postgresql' else SQLITE_GUARD:
        op.execute(stmt)


def downgrade() -> None:
    bind = op.get_bind()
    for stmt in PG_UNGUARD if bind.dialect.name == 'postgresql' else SQLITE_UNGUARD:
        op.execute(stmt)
    if bind.dialect.name == 'sqlite':
        op.execute('PRAGMA foreign_keys = OFF')
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.alter_column('birth_date', existing_type=sa.Date(), nullable=False)
        batch_op.drop_column('purged_at')
        batch_op.drop_column('consent_at')
    if bind.dialect.name == 'sqlite':
        op.execute('PRAGMA foreign_keys = ON')
    op.drop_table('access_log_purge_gate')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_school_at')
        batch_op.drop_index('ix_access_log_at')
    op.drop_table('access_log')
