"""Asynchronous jobs for long documents: the ``jobs`` deployment (:mod:`.worker`), where job state is kept
(:mod:`.store`) and its settings (:mod:`.settings`).

Owns: running a validated document chunk by chunk against backend handles, progress, results on disk.
May import: ``shared``, ``deployments`` (to call backends). Not ``orchestrator.serving``: the router calls this
deployment, never the other way round.
"""
