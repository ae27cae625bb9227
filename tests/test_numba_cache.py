"""UMAP's numba functions cache their compiled code on disk (auditor.numba_cache), so only a
machine's first report or review pays the JIT."""

import pytest
from numba.core.caching import NullCache

from auditor.numba_cache import COMPILED, cached_umap


@pytest.mark.slow  # importing umap costs 20 s
def test_every_umap_function_caches_its_compiled_code():
    import importlib

    from numba.core.registry import CPUDispatcher

    umap = cached_umap()
    assert hasattr(umap, "UMAP")
    dispatchers = [
        value
        for name in COMPILED
        for value in vars(importlib.import_module(name)).values()
        if isinstance(value, CPUDispatcher)
    ]
    assert len(dispatchers) > 50  # umap-learn and pynndescent declare well over a hundred
    assert not [d for d in dispatchers if isinstance(d._cache, NullCache)]
