"""Import a file the way pytest's prepend import mode does, without pytest.

Copied into the sandbox as ``plancode_pytest_import.py`` (standard library only) for the two
children that import the user's modules themselves: the value runner (``value_runner.py``)
and the split run's worker (``call_worker.py``). A module is imported under its package's
dotted name with the folder above its top package first on ``sys.path``, after the conftest
files from the rootdir down to its folder (they may set up ``sys.path``), as pytest would.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def basedir_and_name(path: str) -> tuple[str, str]:
    """(the folder above ``path``'s top package, its dotted module name)."""
    directory, name = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(name)[0]]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    if parts[-1] == "__init__":
        parts.pop()
    return directory, ".".join(parts)


def conftests(path: str, root: str, loaded: set[str]) -> None:
    """Import the conftest files from ``root`` down to ``path``'s folder, each under a name of
    its own, skipping those in ``loaded`` (and adding the ones imported)."""
    folder = os.path.dirname(os.path.abspath(path))
    chain = []
    while True:
        chain.insert(0, folder)
        if os.path.samefile(folder, root) or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    for k, directory in enumerate(chain):
        conftest = os.path.join(directory, "conftest.py")
        if not os.path.isfile(conftest) or conftest in loaded:
            continue
        loaded.add(conftest)
        basedir, name = basedir_and_name(conftest)
        if basedir not in sys.path:
            sys.path.insert(0, basedir)
        spec = importlib.util.spec_from_file_location(f"{name}__plancode{k}", conftest)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
