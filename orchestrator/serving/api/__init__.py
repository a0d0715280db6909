"""The router's HTTP API, built per replica by :func:`create_api`."""

from orchestrator.serving.api.app import create_api

__all__ = ["create_api"]
