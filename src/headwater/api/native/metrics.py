"""Prometheus metrics (instance admin only: counts span every workspace)."""

from __future__ import annotations

import os
import resource

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from headwater.api.deps import DbSession, InstanceAdmin
from headwater.providers.local_llama import local_model_info
from headwater.store.job_models import Job
from headwater.store.models import App, Run

router = APIRouter(tags=["metrics"])


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    label_text = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
    return f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}"


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(_: InstanceAdmin, db: DbSession) -> str:
    lines = [
        "# HELP headwater_runs Runs recorded, by status.", "# TYPE headwater_runs gauge",
        *(_line("headwater_runs", count, {"status": status})
          for status, count in await db.execute(select(Run.status, func.count()).group_by(Run.status))),
        "# HELP headwater_jobs Background jobs, by status.", "# TYPE headwater_jobs gauge",
        *(_line("headwater_jobs", count, {"status": status})
          for status, count in await db.execute(select(Job.status, func.count()).group_by(Job.status))),
        "# HELP headwater_apps Apps, by kind.", "# TYPE headwater_apps gauge",
        *(_line("headwater_apps", count, {"kind": kind})
          for kind, count in await db.execute(select(App.kind, func.count()).group_by(App.kind))),
        "# HELP headwater_local_model_loaded Whether the embedded model is in memory.",
        "# TYPE headwater_local_model_loaded gauge",
        _line("headwater_local_model_loaded", int(bool(local_model_info().get("loaded")))),
        "# HELP process_resident_memory_bytes Resident memory of this process.",
        "# TYPE process_resident_memory_bytes gauge",
        _line("process_resident_memory_bytes", _rss_bytes()),
    ]
    return "\n".join(lines) + "\n"
