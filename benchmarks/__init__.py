"""Benchmarks (run as modules from the repo root: ``python -m benchmarks.NAME``, because
``benchmarks/typing.py`` would shadow the standard library's ``typing`` if this folder were
put on ``sys.path`` by running a file directly). Results land in docs/."""
