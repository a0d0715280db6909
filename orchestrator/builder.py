"""The stable import path of the application builder for Serve configs: ``import_path:
orchestrator.builder:build_app``. The builder itself lives in :mod:`orchestrator.serving.application`."""

from orchestrator.serving.application import build_app

__all__ = ["build_app"]
