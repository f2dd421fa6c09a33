"""The C++ kernels, compiled for this machine on first use and cached.

``torch.utils.cpp_extension.load`` builds ``csrc/sparse_kernels.cpp`` (inference, :func:`kernels`)
or ``csrc/sparse_train.cpp`` (training, :func:`train_kernels`) with ``-O3 -march=native`` and
OpenMP into a folder named by a fingerprint of the machine (CPU model and flags), the torch
version and the source, under :func:`cache_dir`; a later process on the same machine loads the
built library in well under a second. When no compiler works, either returns None after one
logged line and the runtime runs on torch instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

_log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "sparse_kernels.cpp"
TRAIN_SOURCE = SOURCE.with_name("sparse_train.cpp")
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


def machine_fingerprint(source: Path = SOURCE) -> str:
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
    headers = [h.read_text() for h in sorted(Path(source).parent.glob("*.h"))]  # what the source includes
    text = "|".join([cpu_name(), flags, str(os.cpu_count()), torch.__version__, Path(source).read_text(), *headers])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kernels(build_dir: Path | None = None):
    """The compiled kernel module, or None (logged once, the reason kept for :func:`why_not`)
    when it can be neither loaded nor built here."""
    return _cached(_folder(build_dir), SOURCE)


def train_kernels(build_dir: Path | None = None):
    """The compiled training kernels (``csrc/sparse_train.cpp``), or None as for :func:`kernels`."""
    return _cached(_folder(build_dir, TRAIN_SOURCE), TRAIN_SOURCE)


def _cached(folder: Path, source: Path):
    key = str(folder)
    if key not in _loaded:
        _loaded[key] = _load_or_build(folder, source)
    return _loaded[key]


def why_not(build_dir: Path | None = None, source: Path = SOURCE) -> str | None:
    """Why :func:`kernels` (``source=TRAIN_SOURCE``: :func:`train_kernels`) returned None for
    this build folder (None: they loaded, or were not tried yet)."""
    return _why.get(str(_folder(build_dir, source)))


_why: dict[str, str] = {}  # build folder -> why the kernels are not available


def _folder(build_dir: Path | None, source: Path = SOURCE) -> Path:
    if build_dir is not None:
        return Path(build_dir)
    home = cache_dir() if source == SOURCE else cache_dir() / "train"
    return home / f"build-{machine_fingerprint(source)}"


def _fail(folder: Path, reason: str) -> None:
    _why[str(folder)] = reason
    _log.warning("sparse runtime: %s; sparse layers run on torch instead", reason)


def _load_or_build(folder: Path, source: Path = SOURCE):
    """A library already built in ``folder`` is imported as it is (no compiler, ninja or
    write access needed); a damaged one is set aside and rebuilt; else the source is built."""
    # one module name per source and folder: both libraries can be loaded in one process
    name = ("ticketzoo_sparse_" if source == SOURCE else "ticketzoo_sparse_train_") + folder.name.replace("-", "_")
    library = _built(folder, name)
    if library.is_file():
        problem = elf_problem(library)
        if problem is None:
            try:
                return _import_built(library.stem, library)
            except (ImportError, OSError) as e:  # built for another interpreter, unreadable ...
                problem = f"cannot be imported ({str(e).splitlines()[0][:160]})"
        _log.warning("sparse runtime: %s %s; building it again", library, problem)
        try:
            library.rename(library.with_name(f"{library.name}.damaged-{os.getpid()}"))
        except OSError as e:
            _fail(folder, f"{library} is damaged ({problem}) and cannot be moved aside ({e.strerror})")
            return None
    return _build(folder, name, source)


def _built(folder: Path, name: str) -> Path:
    """The library built for module ``name`` in ``folder``: ``NAME.so``, or the newest of the
    ``NAME_vN.so`` torch's ``load`` writes when a module of that name was loaded or failed
    to build earlier in the same process."""
    versions = [(int(p.stem.rsplit("_v", 1)[1]), p) for p in folder.glob(f"{name}_v*.so")
                if p.stem.rsplit("_v", 1)[1].isdigit()]
    return max(versions)[1] if versions else folder / f"{name}.so"


def elf_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole ELF shared library (None: it looks whole). A truncated
    library would be mapped all the same and kill the process with SIGBUS on first use, so
    the file must reach the end of its section-header table and of every loaded segment."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            size = os.fstat(f.fileno()).st_size
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return "is not a 64-bit ELF library" if size else "is empty (0 bytes)"
            order = "little" if head[5] == 1 else "big"
            u = lambda a, b: int.from_bytes(head[a:b], order)  # noqa: E731
            phoff, shoff, phentsize, phnum, shentsize, shnum = (u(32, 40), u(40, 48), u(54, 56), u(56, 58),
                                                                u(58, 60), u(60, 62))
            if shoff + shentsize * shnum > size or phoff + phentsize * phnum > size:
                return f"is truncated ({size} bytes)"
            f.seek(phoff)
            for _ in range(phnum):
                ph = f.read(phentsize)
                if len(ph) < 40:
                    return f"is truncated ({size} bytes)"
                offset, filesz = int.from_bytes(ph[8:16], order), int.from_bytes(ph[32:40], order)
                if offset + filesz > size:
                    return f"is truncated ({size} bytes)"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return None


def _import_built(name: str, library: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module spec for {library}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(folder: Path, name: str, source: Path = SOURCE):
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        _fail(folder, f"no C++ compiler ({compiler} not found) and no kernels built in {folder}")
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
        # ninja comes with ticketzoo into the interpreter's environment: found there even when
        # that environment is not activated (.venv/bin/ticketzoo run by its path)
        path = os.environ.get("PATH")
        os.environ["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), path) if p)
        try:
            return load(name=name, sources=[str(source)], extra_cflags=FLAGS, extra_ldflags=["-fopenmp"],
                        build_directory=str(folder), verbose=False)
        finally:
            if path is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = path
    except Exception as e:  # a compiler or linker error, ninja missing, a read-only cache ...
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        _fail(folder, f"the C++ kernels did not build in {folder} ({first[:200]})")
        return None
