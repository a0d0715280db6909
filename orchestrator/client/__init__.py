"""The Python client of the service, for users and for the CLI.

Owns: talking HTTP to a deployment (:mod:`.http`) and writing answers to disk (:mod:`.outputs`). Returns the
models of :mod:`shared.schema`, never raw dicts. May import: ``shared`` only, so it installs and runs without Ray.
"""

from orchestrator.client.http import OCRClient, ServiceError
from orchestrator.client.outputs import write_chunks, write_outputs

__all__ = ["OCRClient", "ServiceError", "write_chunks", "write_outputs"]
