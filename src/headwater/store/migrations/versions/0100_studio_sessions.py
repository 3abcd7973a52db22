"""Studio sessions: the web page's sign-in cookie, stored hashed

Revision ID: studio_0001
Revises: 0001

A branch of its own off the initial schema (it needs only workspaces and
api_keys), so it never competes with the numbered line for the next number.
"""
import sqlalchemy as sa
from alembic import op

from headwater.store.models import UTCDateTime

revision = "studio_0001"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studio_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("api_key_id", sa.String(36), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
        sa.Column("password_check", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_studio_sessions_workspace_id", "studio_sessions", ["workspace_id"])
    op.create_index("ix_studio_sessions_api_key_id", "studio_sessions", ["api_key_id"])
    op.create_index("ix_studio_sessions_expires_at", "studio_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("studio_sessions")
