"""Liveness (public by design: load balancers call it without credentials)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from headwater import __version__
from headwater.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(runtime: RuntimeDep):
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
