"""The request path: everything that runs inside the application's replicas for a client's request.

Owns: the typed app config and deployment names (:mod:`.config`), the builder ``build_app`` (:mod:`.builder`),
the router deployment (:mod:`.router`), the ``auto`` rule (:mod:`.selection`), the router's Prometheus metrics
(:mod:`.telemetry`) and the FastAPI routes (:mod:`.api`). May import: ``shared``, ``backends`` (the registry,
to validate engine settings), ``deployments`` and ``orchestrator.jobs``. Nothing here imports the client, the
evaluation or the operations packages.
"""
