"""Conversation threads (a FlowGen chat, a playground workflow) and their journal.

A thread is a session of an app (same id) plus what the dialects show of it:
name, description, tags, mode. `active_run_id` is the turn the thread is on: a
new turn may only claim the thread when that run has ended (one live run per
thread). The journal (`thread_items`) lists what the thread shows, in the order
it became visible: messages (the session's rows), logs (the agent's events),
stats (one per finished turn) and documents (files of messages). Each item's
`stamp` comes from the thread's clock (`last_stamp`, microseconds, at least the
wall clock, +1 per item) in the transaction that writes the item, under the
thread's row lock; see services/thread_journal.py for why that makes polling by
time exact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from headwater.store.models import Base, JSONType, UTCDateTime, utcnow


class Thread(Base):
    __tablename__ = "threads"
    __table_args__ = (Index("ix_threads_workspace_dialect", "workspace_id", "dialect", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # = the session's id
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    dialect: Mapped[str] = mapped_column(String(16))  # flowgen | playground
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # react | actionplan (playground)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active_run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The journal: its clock, and how far the active run's events have been journaled.
    last_stamp: Mapped[int] = mapped_column(BigInteger, default=0)
    journal_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ThreadItem(Base):
    __tablename__ = "thread_items"
    __table_args__ = (UniqueConstraint("thread_id", "stamp"),)

    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # message | log | stat | document
    stamp: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
