"""runs by conversation (a chat turn looks for a run waiting for the user's answer)

Revision ID: 0005
Revises: 0001
"""
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_session", "runs", ["workspace_id", "session_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_session", table_name="runs")
