"""Entry point of ``visioncore.training.run_distributed``'s helper interpreter.

``run_distributed`` starts this module in a fresh Python process, which forks the gloo workers. Forking the caller
itself is unsafe: once a process has run an OpenMP parallel region (any multi-threaded torch op), GNU libgomp hangs
in its forked children. The function to run is named by file, module and qualified name, so that functions of test
modules that pytest imports by path (``--import-mode=importlib``, not on ``sys.path``) load here too.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import types
from pathlib import Path
from typing import Any


def load_function(file: str, module: str, qualname: str) -> Any:
    """``module.qualname``, imported by name when ``module`` resolves to ``file``, else loaded from ``file``."""
    try:
        spec = importlib.util.find_spec(module) if module != "__main__" else None
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and Path(spec.origin).resolve() == Path(file).resolve():
        obj: Any = importlib.import_module(module)
    else:
        obj = _module_from_file("__mp_main__" if module == "__main__" else module, Path(file))
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _module_from_file(name: str, file: Path) -> types.ModuleType:
    """Load ``file`` as module ``name``; missing parent packages become namespace modules over the file's folders
    (as pytest's importlib mode names them), so relative imports such as ``from .conftest import x`` work."""
    parts, folder = name.split("."), file.parent
    for i in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            package = types.ModuleType(parent)
            package.__path__ = [str(folder)]
            sys.modules[parent] = package
        folder = folder.parent
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file}: cannot load {name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(job: str) -> None:
    # the job file is written by run_distributed in the parent process, never user data
    header, payload = pickle.loads(Path(job).read_bytes())
    sys.path[:0] = [p for p in header["sys_path"] if p not in sys.path]
    fn = load_function(header["file"], header["module"], header["qualname"])
    args = pickle.loads(payload)  # after the module: the arguments may be instances of its classes
    from accelerate import debug_launcher

    from visioncore.training import _fresh_state_call

    debug_launcher(_fresh_state_call, args=(fn, args), num_processes=header["num_processes"])


if __name__ == "__main__":
    main(sys.argv[1])
