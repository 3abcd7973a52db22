"""job owners and leases: a job runs in one process at a time, and a dead worker's job is delivered again

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from headwater.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = "0002"  # the jobs table (0002 is a sibling branch of 0003-0006)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("lease_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner_id")
