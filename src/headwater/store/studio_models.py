"""Signed-in Studio sessions (the web page's cookie), stored by the hash of their token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from headwater.store.models import Base, UTCDateTime, new_id, utcnow


class StudioSession(Base):
    __tablename__ = "studio_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # SHA-256 hex of the cookie's token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    # The admin key the user signed in with: deleting the key deletes its sessions.
    # NULL for a sign-in with the admin user and password.
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True, index=True
    )
    # Password sign-ins: HMAC of "user:password" keyed by the token, so changing the
    # admin password ends the sessions opened with the old one (and the row alone
    # reveals nothing that can be tried offline without the cookie).
    password_check: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
