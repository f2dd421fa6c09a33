"""Shared fixtures: an isolated registry home, tiny models and tickets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ticketzoo.card import ArchConfig, SourceData
from ticketzoo.models import build_model, classifier_names
from ticketzoo.pruning import prune_to_sparsity
from ticketzoo.ticket import Ticket

pytest_plugins = ["hubserver.fixtures"]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run ResNet-50-sized and other slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_sparse_cache(tmp_path_factory) -> str:
    """The sparse runtime's folder (compiled kernels, timed layer choices) for the whole
    session. Under each test's own home every test that trains (the default runtime is
    ``auto``) would compile the C++ training kernels again: ~13 s each, a third of the suite."""
    return os.environ.get("TICKETZOO_SPARSE_CACHE") or str(tmp_path_factory.getbasetemp() / "sparse-cache")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, shared_sparse_cache):
    """Every test gets its own registry home and no extra catalog; the sparse runtime's
    build folder is shared (tests of that cache set their own)."""
    home = tmp_path / "home"
    monkeypatch.setenv("TICKETZOO_HOME", str(home))
    monkeypatch.setenv("TICKETZOO_SPARSE_CACHE", shared_sparse_cache)
    monkeypatch.delenv("TICKETZOO_CATALOG", raising=False)
    monkeypatch.delenv("TICKETZOO_DEBUG", raising=False)
    monkeypatch.delenv("TICKETZOO_REGISTRY", raising=False)  # push goes to the local registry
    return home


def tiny_ticket(
    arch: str = "conv2",
    sparsity: float = 0.8,
    *,
    name: str = "tiny-conv2-s80",
    seed: int = 0,
    trained: bool = True,
    num_classes: int = 4,
    input_size: int = 16,
    **kwargs,
) -> Ticket:
    """A small real ticket: a seeded model, magnitude-pruned, with a perturbed 'trained' set."""
    kwargs.setdefault("width", 0.125)
    model = build_model(arch, num_classes=num_classes, input_size=input_size, seed=seed, **kwargs)
    masks = prune_to_sparsity(model, sparsity)
    other = None
    if trained:
        g = torch.Generator().manual_seed(seed + 1)
        other = {k: (v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    arch_cfg = ArchConfig(
        arch, num_classes, 3, input_size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), classifier_names(model), dict(kwargs)
    )
    src = SourceData("synthetic", tuple(f"c{i}" for i in range(num_classes)), "made by tests")
    return Ticket.from_model(model, masks, name=name, arch=arch_cfg, source=src, trained=other)


COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (50, 70, 220), "yellow": (220, 210, 40)}


def colour_folder(out: Path, *, classes: int = 3, per_class: int = 10, size: int = 16, seed: int = 0,
                  corrupt: int = 0) -> Path:
    """``out/<colour>/*.png``: one flat colour per class under pixel noise, plus ``corrupt``
    unreadable files. Every network here tells the classes apart within an epoch or two, so
    ``find`` judges its rounds ``ok``: for tests of the machinery around training, where the
    synthetic shapes are not learnt by a tiny network in a few epochs (``chance``)."""
    rng = np.random.default_rng(seed)
    for name, rgb in list(COLOURS.items())[:classes]:
        (out / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.asarray(rgb, dtype=np.float64) + rng.normal(0, 25, (size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out / name / f"{i:03d}.png")
    for j in range(corrupt):  # a zero-byte JPEG and text named .png, in turn
        folder = out / list(COLOURS)[j % classes]
        if j % 2:
            (folder / f"broken_{j}.png").write_text("this is not an image\n")
        else:
            (folder / f"broken_{j}.jpg").write_bytes(b"")
    return out


@pytest.fixture
def ticket() -> Ticket:
    return tiny_ticket()


@pytest.fixture
def ticket_file(tmp_path, ticket):
    path = tmp_path / "t.safetensors"
    ticket.save(path)
    return path


@pytest.fixture
def cli(capsys):
    """``ticketzoo ARGS`` in this process: (exit code, stdout, stderr on one line); never a traceback."""
    from ticketzoo.cli.main import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "error: unexpected" not in err, err
        return e.value.code, out, " ".join(err.split())

    return run
