"""The orchestration layer above the engines, split by job:

- :mod:`orchestrator.serving` - the request path inside the app: config, ``build_app``, router, HTTP API, metrics.
- :mod:`orchestrator.jobs` - the asynchronous job deployment for long documents.
- :mod:`orchestrator.client` - the Python client (typed answers, retries), usable without Ray.
- :mod:`orchestrator.evaluation` - accuracy runs and their reports, a client of the running service.
- :mod:`orchestrator.ops` - the CLI, local start, KubeRay generation and the bundled profiles.

``orchestrator.builder:build_app`` is the stable import path Serve configs name. Layers: ``shared`` <- ``backends``
<- ``deployments`` <- ``orchestrator``; nothing imports upward (checked by ``tests/unit/test_architecture.py``).
"""
