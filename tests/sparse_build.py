"""The sparse runtime's C++ kernels, built once per test session (imported by tests/test_sparse_*.py).

The build goes to one folder under the session's temporary root (``$TICKETZOO_SPARSE_CACHE``
when set, to reuse an earlier build), which the CLI's subprocesses find through the same
variable. Without a C++ compiler the tests that need the kernels are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def sparse_cache(shared_sparse_cache):
    """The folder the runtime builds in and caches choices in (set for this process and children;
    every test's home fixture points there too, see conftest.py)."""
    folder = shared_sparse_cache
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TICKETZOO_SPARSE_CACHE", folder)
        yield folder


@pytest.fixture(scope="session")
def compiled(sparse_cache):
    """The compiled kernel module (one build per session); skips without a compiler."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler} not on PATH): the sparse kernels cannot be built")
    from ticketzoo.sparse.kernels import kernels

    module = kernels()
    assert module is not None, "a compiler is installed, yet the sparse kernels did not build (see the log)"
    return module
