"""a covering index for the summaries' pass over the students (ix_student_summary)

Revision ID: 0011_summary_index
Revises: 0010_import
Create Date: 2026-12-03 17:30:00
"""
from __future__ import annotations

from alembic import op


revision = '0011_summary_index'
down_revision = '0010_import'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.create_index(
            'ix_student_summary', ['school_id', 'category', 'need', 'status', 'consent_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.drop_index('ix_student_summary')
