"""Asynchronous jobs for long and bulk documents, durable and fanned out over backend replicas.

The router validates a document and stores it once with the job's record (:mod:`.store` over :mod:`.kv`: SQLite
on one machine, Redis on a cluster); chunks of pages go through Ray Serve's async inference queue (:mod:`.queue`,
Celery) to consumer replicas (:mod:`.consumer`), which run each chunk against a backend and store its answer. The
rules of a job's life are pure functions on its record (:mod:`.records`); what the router serves is
:mod:`.service` (with :mod:`.events`, :mod:`.idempotency`, :mod:`.callbacks`).

Owns: job state, the queue's configuration, running chunks, callbacks, job metrics.
May import: ``shared``, ``deployments`` (to call backends). Not ``orchestrator.serving``: the router calls into
this package, never the other way round.
"""
