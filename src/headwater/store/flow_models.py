"""What a graph run needs to be resumed: after a human-input pause, or after a server restart.

Node results are not duplicated here: the run's persisted `node_finished`
events are the record of what already ran (see services/flows.py). This row
keeps the rest: the run's checked inputs and `sys` variables as they were at
start, the answers given to waiting human_input nodes, what it is waiting for,
and the background job currently executing it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from headwater.store.models import Base, JSONType, UTCDateTime, utcnow


class FlowRunState(Base):
    __tablename__ = "flow_run_states"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sys: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # node_id -> the answer given to that human_input node
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # [{"node_id", "prompt"}] while the run is waiting
    waiting: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
