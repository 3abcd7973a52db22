"""The Celery application of the scale-out job queue: one queue, one task, settings from Headwater's.

Both sides build their app here: API processes send `run_job` messages with
it (`celery_queue.CeleryQueue`), workers consume them (`headwater.worker`).
A message only carries a job id: the job itself (kind, payload, attempts,
status) is a row in the store, and `queue.base.execute_job` decides from that
row whether a delivery has anything left to do. So the broker never needs to
be exactly-once; it must only never lose a message, hence:

- `task_acks_late`: a message is acknowledged when its job has ended, not when
  a worker takes it, so a worker killed mid-job leaves it unacknowledged;
  Redis gives it back after `visibility_timeout` (kombu keeps taken messages
  in its `unacked` hash until then).
- `task_reject_on_worker_lost`: the same for a pool child that dies (prefork);
  kept for anyone running the app under another pool than `headwater worker`'s.
- `worker_prefetch_multiplier=1`: a worker holds no more messages than it
  has threads, so queued jobs wait in Redis where any idle worker can take them.
- no result backend: outcomes are recorded on the job row.
"""

from __future__ import annotations

from celery import Celery

from headwater.config import Settings

QUEUE_NAME = "headwater"
RUN_JOB_TASK = "headwater.run_job"


def make_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.redis_url`; refuses to build one without it (Celery would try AMQP)."""
    if not settings.redis_url:
        raise ValueError("the Celery job queue needs HEADWATER_REDIS_URL (its broker)")
    # Not set as the current app: each Runtime's queue (and a test's several ones) owns its app.
    app = Celery("headwater", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE_NAME,
        task_routes={RUN_JOB_TASK: {"queue": QUEUE_NAME}},
        # Nobody listens to task events (no Flower in the design): don't publish them.
        worker_send_task_events=False,
        task_send_sent_event=False,
        # One asyncio loop per worker process shares its threads (see headwater.worker): only the
        # threads pool (or solo) fits it, so that is the default even under plain `celery -A`.
        worker_pool="threads",
        worker_concurrency=settings.background_concurrency,
    )
    return app
