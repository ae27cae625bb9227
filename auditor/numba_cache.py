"""umap-learn with its compiled functions cached on disk.

UMAP (the report's map, the App's embeddings panel through FiftyOne Brain) runs on numba
functions that umap-learn and pynndescent declare without `cache=True`, so every process
compiled them again: 25-45 s of each `audit review` and of each report on this project's 2-core
machine, whatever the number of samples. `cached_umap` turns numba's on-disk cache on for every
such function before it is first compiled (`Dispatcher.enable_caching`), under the audit cache
folder (`NUMBA_CACHE_DIR`, default `<cache>/numba`): the first process compiles and writes them,
later ones load them (measured: a UMAP of 600 points took 4-5 s instead of 38-47 s, import
included). numba keys each entry by the function's source file and the CPU, and recompiles when
either changes.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from auditor.write_guard import checked_cache_dir

# the modules whose numba functions a UMAP fit compiles
COMPILED = (
    "umap.umap_",
    "umap.layouts",
    "umap.utils",
    "umap.distances",
    "umap.sparse",
    "umap.spectral",
    "pynndescent.pynndescent_",
    "pynndescent.distances",
    "pynndescent.utils",
    "pynndescent.rp_trees",
    "pynndescent.sparse",
    "pynndescent.sparse_nndescent",
)


def cached_umap() -> ModuleType:
    """The `umap` module, every numba function of COMPILED set to cache its compiled code on
    disk (from its next compilation on)."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(checked_cache_dir() / "numba"))
    import umap
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name in COMPILED:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
    return umap
