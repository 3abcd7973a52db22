"""mcp_servers: remote MCP servers registered per workspace (headers sealed at rest)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from headwater.store.models import JSONType, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("headers_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("header_names", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    op.create_index("ix_mcp_servers_workspace_id", "mcp_servers", ["workspace_id"])


def downgrade() -> None:
    op.drop_index("ix_mcp_servers_workspace_id", table_name="mcp_servers")
    op.drop_table("mcp_servers")
