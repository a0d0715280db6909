"""Measurements of the service and its engines: one script per question, run from the repository's root with the
command in its docstring (``.venv/bin/python benchmarks/NAME.py --help``). What they share with the tests is in
:mod:`benchmarks.support`."""
