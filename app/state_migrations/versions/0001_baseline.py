"""The dashboard's schema when revisions began

Operators, the audit chain, jobs, log lines, runs, sign-offs, monitoring windows, health samples.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-07
"""
from alembic import op

from app.state_migrations.baseline import baseline_metadata

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade():
    baseline_metadata().drop_all(op.get_bind())
