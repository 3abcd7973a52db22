"""conversation threads (FlowGen chats, playground workflows) and their journal

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("dialect", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("active_run_id", sa.String(length=36), nullable=True),
        sa.Column("last_stamp", sa.BigInteger(), nullable=False),
        sa.Column("journal_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_threads_workspace_dialect", "threads", ["workspace_id", "dialect", "created_at"])
    op.create_index("ix_threads_app_id", "threads", ["app_id"])
    op.create_table(
        "thread_items",
        sa.Column("thread_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("data", JSONType, nullable=False),
        sa.ForeignKeyConstraint(["thread_id"], ["threads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("thread_id", "id"),
        sa.UniqueConstraint("thread_id", "stamp"),
    )


def downgrade() -> None:
    op.drop_table("thread_items")
    op.drop_index("ix_threads_app_id", table_name="threads")
    op.drop_index("ix_threads_workspace_dialect", table_name="threads")
    op.drop_table("threads")
