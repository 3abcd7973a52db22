"""The Celery worker of the scale-out job queue: `headwater worker`, or `celery -A headwater.worker worker`.

Jobs are asyncio code sharing one Runtime (engine pool, bus, run control, lease
keeper), while Celery calls tasks as blocking functions on its pool. So each
worker process runs ONE asyncio event loop in a dedicated thread (`JobLoop`),
holding the Runtime opened with `open_runtime(settings, "worker")`; the
`headwater.run_job` task, called on one of Celery's N pool threads, hands
`execute_job(runtime, job_id)` to that loop and waits. With `--pool threads
--concurrency N`, N jobs run concurrently on the shared loop, like the
background jobs of an API process. (Prefork would fork the loop thread away:
the worker refuses any pool but threads and solo.)

The loop's life follows the worker's, through a bootstep that starts after
Celery's pool and before its consumer: the Runtime is open before the first
message is taken and `recover()` has run. On a warm shutdown (SIGTERM, or
`celery control shutdown`), Celery stops consuming and would then wait for the
running tasks to end; the bootstep first interrupts them instead, the way
`InProcessQueue.close` does: the jobs stay `running` in the store (resumable,
their attempt counted) and their messages go back to the queue for the next
worker. Then the Runtime is closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import TYPE_CHECKING, Any, Literal

from celery import Celery, bootsteps
from celery.exceptions import Reject

from headwater.config import Settings, get_settings
from headwater.queue.base import execute_job
from headwater.queue.celery_app import RUN_JOB_TASK, make_celery

if TYPE_CHECKING:
    from headwater.runtime import Runtime
    from headwater.services.leases import LeaseKeeper

log = logging.getLogger(__name__)
Outcome = Literal["done", "duplicate", "interrupted"]
OPEN_TIMEOUT_SECONDS = 120.0  # migrations on a big database can take a while
STOP_TIMEOUT_SECONDS = 20.0  # interrupted jobs unwinding, then the Runtime closing
# An error outside the job's own handler (the store unreachable while claiming or recording): the
# message is sent again after a pause, at most this many times, rather than acknowledged and lost.
INFRA_RETRIES = 8


class JobLoop:
    """One event loop in a thread of its own, holding this worker process's Runtime."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runtime: Runtime | None = None
        self._keeper: LeaseKeeper | None = None
        # Job id -> the task executing it; touched only on the loop. A second message for a job that
        # already runs here is a duplicate (a redelivery while this worker is alive): it is dropped.
        self._running: dict[str, asyncio.Task[Any]] = {}
        # Set from Celery's shutdown (any thread), read by the loop: a plain bool is enough.
        self._closing = False

    def open(self) -> None:
        """Start the loop thread and open the Runtime on it (migrations, lease keeper, recover)."""
        from headwater.boot import open_runtime  # the heavy part of the app, imported when a worker starts

        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_serve_forever, args=(loop,), name="headwater-job-loop", daemon=True)
            thread.start()
            try:
                opened = asyncio.run_coroutine_threadsafe(open_runtime(self._settings, "worker"), loop)
                self._runtime, self._keeper = opened.result(OPEN_TIMEOUT_SECONDS)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(5)
                raise
            self._loop, self._thread = loop, thread
            log.info("job loop ready (runtime owner %s)", self._runtime.owner_id)

    def run(self, job_id: str) -> Outcome:
        """Execute the job on the loop and wait for it (called on a Celery pool thread)."""
        loop = self._loop
        if loop is None or self._closing:
            return "interrupted"
        future = asyncio.run_coroutine_threadsafe(self._execute(job_id), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            return "interrupted"  # cancelled before it started, by interrupt()

    def interrupt(self) -> None:
        """Shutdown: cancel every running job; `execute_job` then leaves it `running` in the store."""
        self._closing = True
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._cancel_running)

    def close(self) -> None:
        """Interrupt what still runs, wait for it to unwind, close the Runtime, stop the loop."""
        with self._lock:
            loop = self._loop
            if loop is None:
                return
            self.interrupt()
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(STOP_TIMEOUT_SECONDS)
            except Exception:  # a worker on its way out: report, and stop the loop anyway
                log.exception("closing the worker's runtime failed")
            self._loop = None
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)

    async def _execute(self, job_id: str) -> Outcome:
        if self._closing:
            return "interrupted"
        if job_id in self._running:
            return "duplicate"
        task = asyncio.current_task()
        assert task is not None and self._runtime is not None
        self._running[job_id] = task
        try:
            await execute_job(self._runtime, job_id, shutting_down=lambda: self._closing)
        except asyncio.CancelledError:
            if self._closing:
                return "interrupted"
            raise
        finally:
            if self._running.get(job_id) is task:
                del self._running[job_id]
        return "done"

    def _cancel_running(self) -> None:
        for task in self._running.values():
            task.cancel()

    async def _shutdown(self) -> None:
        from headwater.boot import close_runtime

        tasks = list(self._running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS / 2)
        if self._runtime is not None and self._keeper is not None:
            await close_runtime(self._runtime, self._keeper)


def _serve_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def create_worker_app(settings: Settings) -> Celery:
    """The worker's Celery app: the `run_job` task and the bootstep that owns the job loop."""
    app = make_celery(settings)
    jobs = JobLoop(settings)

    class JobLoopStep(bootsteps.StartStopStep):
        """Opens the job loop once Celery's pool exists; interrupts and closes it when the worker stops.

        Requiring the pool makes this step start after it and stop before it, and the consumer starts
        last and stops first: on shutdown, consuming stops, then the running jobs are interrupted and
        the Runtime closed, then the pool joins its (by then idle) threads.
        """

        requires = ("celery.worker.components:Pool",)

        def start(self, worker: Any) -> None:
            pool = getattr(worker.pool_cls, "__module__", str(worker.pool_cls))
            if not pool.endswith((".thread", ".solo")):
                raise RuntimeError(f"headwater worker needs --pool threads (or solo), not {pool}")
            jobs.open()

        def stop(self, worker: Any) -> None:
            jobs.close()

        terminate = stop  # a cold shutdown interrupts the same way (it just does not wait for the pool)

    app.steps["worker"].add(JobLoopStep)

    @app.task(name=RUN_JOB_TASK, bind=True, max_retries=INFRA_RETRIES)
    def run_job(task: Any, job_id: str) -> None:
        try:
            outcome = jobs.run(job_id)
        except Exception as exc:  # the store or the loop failed outside the handler: try later
            log.exception("job %s could not be executed; retrying", job_id)
            raise task.retry(exc=exc, countdown=min(2 ** task.request.retries, 60)) from None
        if outcome == "interrupted":
            # Back to the queue rather than acknowledged: the job stays `running` in the store and
            # the next worker's claim resumes it (acks_late makes Reject a real requeue).
            raise Reject(f"job {job_id} interrupted by the worker's shutdown", requeue=True)
        if outcome == "duplicate":
            log.info("job %s already runs in this worker; duplicate delivery dropped", job_id)

    # Keep a reference for tests and tools (the task registry holds it too).
    app.headwater_job_loop = jobs  # type: ignore[attr-defined]
    return app


# `celery -A headwater.worker` (and `headwater worker`) need an app object at import: it is built from
# the environment's settings here, once per worker process. This is the one module-level object
# (Celery's CLI offers no factory hook); importing this module is only done to run a worker.
app = create_worker_app(get_settings())
