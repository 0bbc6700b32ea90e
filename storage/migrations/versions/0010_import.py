"""class lists imported from spreadsheets: student_import, student.import_id

Revision ID: 0010_import
Revises: 0009_privacy
Create Date: 2026-12-03 14:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types


revision = '0010_import'
down_revision = '0009_privacy'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('student_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported_by', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['imported_by'], ['staff.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('student_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_student_import_school_id'), ['school_id'], unique=False)

    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.add_column(sa.Column('import_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_student_import_id'), ['import_id'], unique=False)
        batch_op.create_foreign_key('fk_student_import_id', 'student_import', ['import_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.drop_constraint('fk_student_import_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_student_import_id'))
        batch_op.drop_column('import_id')

    with op.batch_alter_table('student_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_student_import_school_id'))

    op.drop_table('student_import')
