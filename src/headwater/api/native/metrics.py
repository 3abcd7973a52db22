"""Prometheus metrics (instance admin only: counts span every workspace).

This process's counters and histograms (requests, runs, tokens, provider calls,
open streams: headwater.telemetry.REGISTRY), then what the store holds at the
time of the scrape, which every process sees alike: runs and jobs by status,
the queue's depth, apps by kind.
"""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, select
from starlette.responses import Response

from headwater import telemetry
from headwater.api.deps import DbSession, InstanceAdmin
from headwater.providers.local_llama import local_model_info
from headwater.store.job_models import Job
from headwater.store.models import App, Run

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics(_: InstanceAdmin, db: DbSession) -> Response:
    stored = CollectorRegistry()
    runs = Gauge("headwater_runs_stored", "Runs in the store, by status.", ["status"], registry=stored)
    for status, count in await db.execute(select(Run.status, func.count()).group_by(Run.status)):
        runs.labels(status).set(count)
    jobs = Gauge("headwater_jobs", "Background jobs in the store, by status.", ["status"], registry=stored)
    queued = 0
    for status, count in await db.execute(select(Job.status, func.count()).group_by(Job.status)):
        jobs.labels(status).set(count)
        queued += count if status == "queued" else 0
    Gauge("headwater_queue_depth", "Background jobs waiting for a worker.", registry=stored).set(queued)
    apps = Gauge("headwater_apps", "Apps, by kind.", ["kind"], registry=stored)
    for kind, count in await db.execute(select(App.kind, func.count()).group_by(App.kind)):
        apps.labels(kind).set(count)
    Gauge("headwater_local_model_loaded", "Whether the embedded model is in memory.", registry=stored).set(
        int(bool(local_model_info().get("loaded"))))
    return Response(generate_latest(telemetry.REGISTRY) + generate_latest(stored), media_type=CONTENT_TYPE_LATEST)
