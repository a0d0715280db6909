"""Accuracy runs over a dataset with reference transcriptions, against a running service.

Owns: the run-folder format (:mod:`.runfolder`), running and resuming a run (:mod:`.run`), reports and the diff
of two runs (:mod:`.report`). May import: ``shared`` and ``orchestrator.client`` (it is a client of the service,
like any other); never the serving side.
"""
