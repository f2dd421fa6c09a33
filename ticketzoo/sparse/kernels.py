"""The C++ kernels, compiled for this machine on first use and cached.

``torch.utils.cpp_extension.load`` builds ``csrc/sparse_kernels.cpp`` with ``-O3
-march=native`` and OpenMP into a folder named by a fingerprint of the machine (CPU model
and flags), the torch version and the source, under :func:`cache_dir`; a later process on
the same machine loads the built library in well under a second. When no compiler works,
:func:`kernels` returns None after one logged line and the runtime runs on torch instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
from pathlib import Path

_log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "sparse_kernels.cpp"
FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast"]

_loaded: dict[str, object] = {}  # build folder -> module (None: the build failed)


def cache_dir() -> Path:
    """Per-machine files of the sparse runtime: ``$TICKETZOO_SPARSE_CACHE``, else ``sparse/``
    under the ticketzoo cache (the local registry's home, beside its ``tickets/``)."""
    if os.environ.get("TICKETZOO_SPARSE_CACHE"):
        return Path(os.environ["TICKETZOO_SPARSE_CACHE"]).expanduser()
    from ticketzoo.fileio import registry_home

    return registry_home() / "sparse"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (else the platform's word for it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint() -> str:
    """A short hash of what the compiled code and the timings depend on: CPU model and
    instruction-set flags, core count, torch version and the kernel source."""
    import torch

    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = "|".join([cpu_name(), flags, str(os.cpu_count()), torch.__version__, SOURCE.read_text()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kernels(build_dir: Path | None = None):
    """The compiled kernel module, or None (logged once) when it cannot be built here."""
    folder = Path(build_dir) if build_dir is not None else cache_dir() / f"build-{machine_fingerprint()}"
    key = str(folder)
    if key not in _loaded:
        _loaded[key] = _build(folder)
    return _loaded[key]


def _build(folder: Path):
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        _log.warning("sparse runtime: no C++ compiler (%s not found); sparse layers run on torch instead",
                     compiler)
        return None
    try:
        # torch warns at import that no CUDA runtime exists: true and irrelevant to a CPU build.
        quiet = logging.getLogger("torch.utils.cpp_extension")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load
        finally:
            quiet.setLevel(level)

        folder.mkdir(parents=True, exist_ok=True)
        name = "ticketzoo_sparse_" + folder.name.replace("-", "_")
        return load(name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, extra_ldflags=["-fopenmp"],
                    build_directory=str(folder), verbose=False)
    except Exception as e:  # a compiler or linker error, ninja missing, a read-only cache ...
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        _log.warning("sparse runtime: the C++ kernels did not build (%s); sparse layers run on torch instead",
                     first[:200])
        return None
