"""The job queue: Ray Serve's async inference (its Celery adapter) over the broker the settings name.

Chunks and callbacks travel as Celery tasks (``ocrserve.job_chunk(job_id, index)``,
``ocrserve.job_callback(job_id)``) whose task id is the same for every message of the same item
(:func:`~orchestrator.jobs.records.task_id`). Ray's adapter runs the worker: late acknowledgement, a message whose
worker died goes back to the queue (Redis: after ``visibility_timeout``), FIFO per queue.

Brokers (one ``jobs.store`` setting gives both the broker and the job store):

- embedded: kombu's SQLAlchemy transport on ``<state_dir>/broker.sqlite3`` (results, which the job path does not
  use, in ``results.sqlite3``). It restores a fetched message only when the worker shuts down cleanly, so a killed
  consumer's message is recovered by the job store's sweep instead (:func:`~orchestrator.jobs.records.recover`),
  which asks the broker which messages still wait (:meth:`JobQueue.waiting`): a message fetched by a consumer that
  died before claiming its chunk is in neither the store's claims nor the broker's waiting rows.
- Redis: the same Redis as the store; ``visibility_timeout`` is about a chunk's deadline (kombu's default is an
  hour), so a killed consumer's message comes back even without the sweep; the sweep, which asks Redis the same
  way, queues its chunk again sooner (after ``stale_s``).

The queue name, URLs and directories depend on the Serve application's name, known only inside a replica: the
consumer deployment is decorated with :func:`processor_config`, whose adapter resolves them when the replica starts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from celery import signals
from ray.serve.schema import CeleryAdapterConfig, TaskProcessorConfig
from ray.serve.task_processor import CeleryTaskProcessorAdapter

from orchestrator.jobs.records import callback_task_id, task_id
from orchestrator.jobs.settings import EMBEDDED, JobSettings

logger = logging.getLogger("ray.serve")

CHUNK_TASK = "ocrserve.job_chunk"
CALLBACK_TASK = "ocrserve.job_callback"
RESOLVED_IN_REPLICA = "resolved-in-replica://"
EMBEDDED_POLL_S = 0.2
"""How long an idle consumer waits between looks at the embedded broker (kombu's default: 1 s): a job's first
chunks start within this of the submit. Redis needs no polling (the worker blocks on the queue)."""
UNEXPECTED_RETRIES = 3
"""Celery's own retries of a task that raised (a bug, a store outage longer than the store rides out). Expected
failures never raise: a chunk's backend errors are retried in the handler and end as the job's error."""


def celery_config(settings: JobSettings, app: str | None) -> TaskProcessorConfig:
    """Ray's task processor config for Serve application ``app``: queue, broker, and Celery settings."""
    url = settings.store_url()
    transport: dict[str, Any] | None = None
    if url == EMBEDDED:
        directory = settings.app_dir(app)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        broker = f"sqla+sqlite:///{embedded_broker_path(settings, app)}"
        backend = f"db+sqlite:///{directory}/results.sqlite3"
    else:
        broker = backend = url
        transport = {"visibility_timeout": int(settings.chunk_timeout_s + 60)}
    return TaskProcessorConfig(
        queue_name=settings.queue(app),
        adapter_config=CeleryAdapterConfig(
            broker_url=broker,
            backend_url=backend,
            broker_transport_options=transport,
            app_custom_config={
                "worker_prefetch_multiplier": 1,  # with late acks: a worker holds only what it runs
                "worker_hijack_root_logger": False,  # the replica's logging stays Ray's
                "worker_redirect_stdouts": False,
                "worker_send_task_events": False,
                "broker_connection_retry_on_startup": True,
                "broker_connection_max_retries": None,  # ride out a broker restart, however long
                "worker_cancel_long_running_tasks_on_connection_loss": False,  # the store dedupes a re-run
                "task_publish_retry_policy": {
                    "max_retries": 30,
                    "interval_start": 0.5,
                    "interval_step": 1.0,
                    "interval_max": 5.0,
                },
            },
            task_custom_config={"ignore_result": True},  # results live in the job store
        ),
        max_retries=UNEXPECTED_RETRIES,
    )


def processor_config(settings: JobSettings) -> TaskProcessorConfig:
    """The config ``@task_consumer`` is given in the builder: its adapter resolves the real one in the replica."""

    class JobQueueAdapter(CeleryTaskProcessorAdapter):
        """Ray's Celery adapter, configured for this replica's application when the replica starts."""

        def __init__(self, config: TaskProcessorConfig, *args: Any, **kwargs: Any) -> None:
            super().__init__(celery_config(settings, current_app()), *args, **kwargs)
            self._worker: Any = None
            if settings.store_url() == EMBEDDED:
                from kombu.transport import sqlalchemy

                # kombu's virtual transports sleep 1 s after an empty poll; its SQLAlchemy transport hands every
                # transport option to create_engine, so this class attribute is the only way to poll faster.
                sqlalchemy.Transport.polling_interval = EMBEDDED_POLL_S

        def start_consumer(self, **kwargs: Any) -> None:
            signals.worker_init.connect(self._found_worker, weak=False)
            super().start_consumer(**kwargs)

        def _found_worker(self, sender: Any = None, **_: Any) -> None:
            if getattr(sender, "app", None) is self._app:
                self._worker = sender

        def stop_consumer(self, timeout: float = 10.0) -> None:
            """Stop the worker itself (a warm shutdown: running chunks may finish) rather than by Ray's broadcast
            message, which the embedded broker cannot carry (it has no fanout): the stop took Ray's 10 s time-out."""
            thread = self._worker_thread
            if self._worker is None or thread is None or not thread.is_alive():
                super().stop_consumer(timeout)
                return
            threading.Thread(target=self._worker.stop, daemon=True, name="celery-stop").start()
            thread.join(timeout)
            self._worker_thread = None

    return TaskProcessorConfig(
        queue_name=settings.queue_name,
        adapter=JobQueueAdapter,
        adapter_config=CeleryAdapterConfig(broker_url=RESOLVED_IN_REPLICA, backend_url=RESOLVED_IN_REPLICA),
        max_retries=UNEXPECTED_RETRIES,
    )


def embedded_broker_path(settings: JobSettings, app: str | None) -> str:
    return os.path.join(settings.app_dir(app), "broker.sqlite3")


def _on_embedded_broker(settings: JobSettings, app: str | None, sql: str, params: tuple) -> tuple[list[tuple], int]:
    """Run one statement on the embedded broker's database: its rows and row count; none where the broker holds
    nothing yet (no file, or no table: no message ever sent)."""
    import sqlite3

    path = embedded_broker_path(settings, app)
    if not os.path.exists(path):
        return [], 0
    db = sqlite3.connect(path, timeout=30)
    try:
        with db:
            cursor = db.execute(sql, params)
            return cursor.fetchall(), cursor.rowcount
    except sqlite3.OperationalError:  # no table yet
        return [], 0
    finally:
        db.close()


def prune_embedded_broker(settings: JobSettings, app: str | None, *, older_than_s: float) -> int:
    """Delete messages the embedded broker delivered more than ``older_than_s`` ago; returns how many.

    kombu's SQLAlchemy transport marks a delivered message invisible and never deletes it (an acknowledgement is
    in memory only), so its table would grow by one row per chunk forever. A message delivered ``keep_s`` ago
    belongs to a chunk long done or recovered: deleting it changes nothing else.
    """
    import datetime

    # SQLAlchemy keeps kombu's naive local timestamps as text in this form, which sorts as time does
    cutoff = (datetime.datetime.now() - datetime.timedelta(seconds=older_than_s)).strftime("%Y-%m-%d %H:%M:%S.%f")
    sql = "DELETE FROM kombu_message WHERE visible = 0 AND timestamp IS NOT NULL AND timestamp < ?"
    return _on_embedded_broker(settings, app, sql, (cutoff,))[1]


def embedded_waiting(settings: JobSettings, app: str | None) -> frozenset[str]:
    """The task ids of the messages in the embedded broker's queue for ``app`` that no consumer has fetched yet.

    kombu's SQLAlchemy transport marks a message invisible when a worker fetches it (and keeps it so if that worker
    dies): a visible row is a message still waiting. Its payload carries the task id in ``headers.id``.
    """
    sql = (
        "SELECT json_extract(m.payload, '$.headers.id') FROM kombu_message m JOIN kombu_queue q"
        " ON q.id = m.queue_id WHERE m.visible = 1 AND q.name = ?"
    )
    rows, _ = _on_embedded_broker(settings, app, sql, (settings.queue(app),))
    return frozenset(r[0] for r in rows if r[0])


def redis_waiting(client: Any, queue: str) -> frozenset[str]:
    """The task ids of the messages waiting in Redis queue ``queue`` (kombu keeps one list per priority step; a
    fetched message leaves its list for the ``unacked`` hash)."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    keys = [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]
    ids: set[str] = set()
    for key in keys:
        for raw in client.lrange(key, 0, -1):
            tid = json.loads(raw).get("headers", {}).get("id")
            if tid:
                ids.add(tid)
    return frozenset(ids)


def current_app() -> str | None:
    """The Serve application this replica belongs to (None outside Serve)."""
    try:
        from ray import serve

        return serve.get_replica_context().app_name
    except Exception:  # not in a replica (unit tests, tools)
        return None


class JobQueue:
    """Puts chunks and callbacks in the queue (the router at submit, consumers for the next chunks)."""

    def __init__(self, settings: JobSettings, app: str | None) -> None:
        from ray.serve.task_consumer import instantiate_adapter_from_config

        self.redis = settings.is_redis()
        self.settings, self.app = settings, app
        self.adapter = instantiate_adapter_from_config(celery_config(settings, app))
        self._redis_client: Any = None

    def waiting(self) -> frozenset[str]:
        """Task ids whose message waits in the queue, not yet fetched by a consumer.

        What the sweep needs to find a message fetched by a consumer that died before claiming its chunk: the
        embedded broker never gives such a message back, Redis only after ``visibility_timeout`` (about a chunk's
        deadline, 11 min by default), so both are asked rather than waited for.
        """
        if not self.redis:
            return embedded_waiting(self.settings, self.app)
        if self._redis_client is None:
            import redis

            self._redis_client = redis.Redis.from_url(
                self.settings.store_url(), socket_timeout=30, socket_connect_timeout=5
            )
        return redis_waiting(self._redis_client, self.settings.queue(self.app))

    def send_chunks(self, job_id: str, indices: list[int]) -> None:
        for i in indices:
            self.adapter.enqueue_task_sync(CHUNK_TASK, args=[job_id, i], task_id=task_id(job_id, i))

    def send_callback(self, job_id: str) -> None:
        self.adapter.enqueue_task_sync(CALLBACK_TASK, args=[job_id], task_id=callback_task_id(job_id))

    def revoke(self, task_ids: list[str]) -> None:
        """Ask workers to drop these tasks (Redis only: revoking is a broadcast, which the embedded broker lacks).
        An optimisation: a revoked chunk's handler would find the job cancelled and stop anyway."""
        if not self.redis or not task_ids:
            return
        try:
            for tid in task_ids:
                self.adapter.cancel_task_sync(tid)
        except Exception as e:  # the broker is busy or away: the handlers' own check drops them
            logger.info("revoking %d tasks failed: %s", len(task_ids), e)
