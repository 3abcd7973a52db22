"""The background job that executes a graph run (`POST /v1/runs` with background, async executions, resumes).

Idempotent as the queue requires: it continues whatever the store says is left
(finished nodes are replayed, not re-run), and does nothing for a run that
already ended or waits for input.
"""

from __future__ import annotations

from headwater.queue.handlers import JobContext, job_handler
from headwater.services.flows import FLOW_JOB_KIND, FlowService


@job_handler(FLOW_JOB_KIND)
async def run_flow(ctx: JobContext, payload: dict) -> None:
    await FlowService(ctx.runtime).execute_background(str(payload["run_id"]))
