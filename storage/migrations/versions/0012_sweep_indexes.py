"""indexes for the sweep at national size: open needs reports, officers by role and district/province

Revision ID: 0012_sweep_indexes
Revises: 0011_summary_index
Create Date: 2026-12-03 19:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012_sweep_indexes'
down_revision = '0011_summary_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.create_index(
            'ix_school_needs_open',
            ['id'],
            unique=False,
            sqlite_where=sa.text('needs_report_submitted_at IS NULL'),
            postgresql_where=sa.text('needs_report_submitted_at IS NULL'),
        )
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.create_index('ix_staff_role_district', ['role', 'district_id'], unique=False)
        batch_op.create_index('ix_staff_role_province', ['role', 'province_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_role_province')
        batch_op.drop_index('ix_staff_role_district')
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.drop_index('ix_school_needs_open')
