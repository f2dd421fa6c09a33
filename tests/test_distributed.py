"""``find`` and ``finetune`` under ``torchrun`` on CPU (gloo, 2 processes).

Every run here is a real ``python -m torch.distributed.run --nproc_per_node 2`` of the
CLI, through a small launcher that records, per rank, every file it writes under the run
folder and its process id (so one rank can be killed).

Tolerance: a 2-process run trains the same global batches as one process, but each
gradient is the sum of two half-batch sums (DDP's all-reduce) instead of one sum, so
float32 rounding differs by ~1e-7 per step. Over these tiny runs (~100 steps) the weights
stay within 1e-5 of the 1-process run (measured: 2e-7) while a lost, doubled or
mis-weighted sample moves them by ~1e-2; pruning compares magnitudes whose gaps are far
larger than 1e-5, so the masks must be equal exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import colour_folder
from ticketzoo.ticket import Ticket

EPOCH = "1700000000"
TOL = 1e-5
LAUNCHER = '''
import builtins, io, os, sys, atexit
rank, root = os.environ["RANK"], sys.argv.pop(1)
log = []
real_open, real_replace, real_mkdir = builtins.open, os.replace, os.mkdir
inside = lambda p: os.path.abspath(str(p)).startswith(root)
def tracked_open(file, mode="r", *a, **k):
    if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
        log.append(str(file))
    return real_open(file, mode, *a, **k)
def tracked_replace(src, dst, *a, **k):
    if inside(dst):
        log.append(str(dst))
    return real_replace(src, dst, *a, **k)
def tracked_mkdir(path, *a, **k):
    if inside(path):
        log.append(str(path))
    return real_mkdir(path, *a, **k)
builtins.open = io.open = tracked_open
os.replace, os.mkdir = tracked_replace, tracked_mkdir
with real_open(f"{root}.pid-{rank}", "w") as f:
    f.write(str(os.getpid()))
def dump():
    with real_open(f"{root}.writes-{rank}", "w") as f:
        f.write("\\n".join(log))
atexit.register(dump)
from ticketzoo.cli.main import main
main(sys.argv[1:])
'''


def torchrun(tmp: Path, root: Path, *args: str, nproc: int = 2, wait: bool = True):
    """``torchrun --nproc_per_node nproc`` of ``ticketzoo ARGS``, tracking writes under ``root``."""
    launcher = tmp / "launch_tz.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "OMP_NUM_THREADS": "1",
           "TICKETZOO_HOME": str(tmp / "home")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--standalone", str(launcher), str(root), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _why(err: str) -> str:
    """The ranks' own error lines (torchrun's summary after them says only 'exitcode 1')."""
    lines = [x for x in err.splitlines() if "error" in x.lower() and "elastic" not in x]
    return "\n".join(lines[-20:]) or err[-3000:]


def writes(root: Path, rank: int) -> list[str]:
    path = Path(f"{root}.writes-{rank}")
    return [x for x in path.read_text().split("\n") if x] if path.exists() else []


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 11 images per class: an odd number of training images, so the last batch of 2 holds
    # one image and rank 1's share of it is the padding sample.
    return colour_folder(tmp_path_factory.mktemp("ddp") / "ddp-colours", per_class=11)


def _find_args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["find", "--arch", "conv2", "--width", "0.125", "--data", str(data), "--input-size", "16",
            "--rounds", "2", "--epochs", "3", "--rewind", "1ep", "--batch-size", "2", "--lr", "0.02",
            "--milestones", "none", "--patience", "0", "--device", "cpu", "--threads", "1", "-q",
            "--run-dir", str(run_dir), *extra]


@pytest.fixture(scope="module")
def two(data, tmp_path_factory):
    """A 2-process find: (its run folder, the tracked root)."""
    tmp = tmp_path_factory.mktemp("two")
    code, out, err = torchrun(tmp, tmp / "runs", *_find_args(data, tmp / "runs"))
    assert code == 0, _why(err)
    return next((tmp / "runs").iterdir()), tmp / "runs"


def _one(data: Path, run_dir: Path, monkeypatch):
    from ticketzoo.cli.main import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    with pytest.raises(SystemExit) as exc:
        main(_find_args(data, run_dir))
    assert exc.value.code == 0
    return next(run_dir.iterdir())


def _tickets(run: Path) -> list[Ticket]:
    rows = json.loads((run / "log.json").read_text())["rounds"]
    return [Ticket.load(run / r["file"]) for r in rows if r["file"]]


def test_two_processes_find_the_tickets_of_one(data, two, tmp_path, monkeypatch):
    run2, _ = two
    run1 = _one(data, tmp_path / "one", monkeypatch)
    n_train = json.loads((run1 / "recipe.json").read_text())["data"]["counts"]["train"]
    assert n_train % 2 == 1  # the padded last batch is exercised
    one, many = _tickets(run1), _tickets(run2)
    assert [t.name for t in one] == [t.name for t in many] and len(one) == 2
    for a, b in zip(one, many):
        assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)  # nested, equal masks
        for s in ("rewind", "trained"):
            sa, sb = a.state_dict(s), b.state_dict(s)
            worst = max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)
            assert worst <= TOL, (a.name, s, worst)
        assert b.card.extra["distributed"] == {"world_size": 2, "per_rank_batch": 1, "global_batch": 2,
                                               "backend": "gloo"}
        assert "distributed" not in a.card.extra and b.card.recipe.record == a.card.recipe.record
        assert b.card.recipe.find.hash() == a.card.recipe.find.hash()
    rows1 = json.loads((run1 / "log.json").read_text())["rounds"]
    rows2 = json.loads((run2 / "log.json").read_text())["rounds"]
    assert [r["test_accuracy"] for r in rows1] == [r["test_accuracy"] for r in rows2]
    assert json.loads((run2 / "recipe.json").read_text())["processes"]["world_size"] == 2


def test_on_device_data_path_two_processes(data, tmp_path, monkeypatch):
    """--augment: the splits live on the device and each rank builds its share of the plan."""
    extra = ("--augment", "--rounds", "1", "--epochs", "2")
    code, _, err = torchrun(tmp_path, tmp_path / "r2", *_find_args(data, tmp_path / "r2", *extra))
    assert code == 0, _why(err)
    from ticketzoo.cli.main import main

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    with pytest.raises(SystemExit) as exc:
        main(_find_args(data, tmp_path / "r1", *extra))
    assert exc.value.code == 0
    (a,), (b,) = _tickets(next((tmp_path / "r1").iterdir())), _tickets(next((tmp_path / "r2").iterdir()))
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    sa, sb = a.state_dict("trained"), b.state_dict("trained")
    assert max(float((sa[k] - sb[k]).abs().max()) for k in sa) <= TOL


def test_rank0_alone_writes(two):
    run, root = two
    assert writes(root, 1) == []
    mine = writes(root, 0)
    for expected in ("recipe.json", "log.json", "theta0.safetensors", "train.csv", "checkpoint.pt",
                     "ticket.safetensors", "README.md"):
        assert any(Path(p).name == expected for p in mine), expected


def test_a_killed_rank_stops_all_and_resume_ends_the_same(data, two, tmp_path, monkeypatch):
    run2, _ = two
    root = tmp_path / "runs"
    proc = torchrun(tmp_path, root, *_find_args(data, root), wait=False)
    deadline = time.monotonic() + 120
    while not list(root.glob("*/round_01/checkpoint.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, _why(proc.communicate()[1])
        time.sleep(0.01)
    os.kill(int(Path(f"{root}.pid-1").read_text()), signal.SIGKILL)
    code = proc.wait(timeout=120)
    assert code != 0  # torchrun stopped rank 0 too
    run = next(root.iterdir())
    assert not (run / "round_02" / "result.json").exists()
    from ticketzoo.folder import read_entry, verify_entry

    for folder in (run / "tickets").iterdir() if (run / "tickets").exists() else ():
        if not folder.name.startswith("."):  # no partial ticket: whole folders or none
            verify_entry(read_entry(folder))

    code, _, err = torchrun(tmp_path, root, *_find_args(data, root))
    assert code == 0, _why(err)
    for a, b in zip(_tickets(run2), _tickets(run)):  # same world size: bitwise the same
        assert (a.name, a.to_bytes()) == (b.name, b.to_bytes())


def test_another_world_size_is_refused_naming_both(data, two, tmp_path, capsys, monkeypatch):
    import shutil

    run2, _ = two
    copy = tmp_path / "copy"
    shutil.copytree(run2, copy)
    (copy / "round_02" / "result.json").unlink()
    from ticketzoo.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(_find_args(data, copy))
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "started on 2 process(es); this run has 1" in err, err


def test_batch_must_divide_among_ranks(monkeypatch):
    from ticketzoo.errors import ConfigError
    from ticketzoo.train import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert distributed.per_rank_batch(8) == 4
    with pytest.raises(ConfigError, match="global batch and must be divisible by the 2") as e:
        distributed.per_rank_batch(7)
    assert e.value.field == "batch_size" and e.value.value == 7


def test_shard_split_covers_the_batch_once():
    from ticketzoo.train.distributed import IGNORE, Shard

    x, y = torch.arange(5.0)[:, None], torch.arange(5)
    parts = [Shard(r, 2).split(x, y) for r in range(2)]
    assert sorted(torch.cat([p[1] for p in parts]).tolist()) == [0, 1, 2, 3, 4]
    lone = [Shard(r, 3).split(x[:1], y[:1]) for r in range(3)]  # 1 image, 3 ranks
    assert [p[1].tolist() for p in lone] == [[0], [IGNORE], [IGNORE]]


def test_finetune_on_two_processes(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parent.parent
    ticket = root / "cards" / "fashionmnist-lenet-300-100-s79" / "ticket.safetensors"
    # 90 training digits in batches of 8: the last batch of 2 is shared 1 + 1
    args = ["finetune", str(ticket), "--data", str(root / "examples" / "digits"),
            "--split", "0.3,0.1,0.6", "--epochs", "4", "--batch-size", "8", "--patience", "0",
            "--device", "cpu", "--threads", "1", "-q"]
    code, _, err = torchrun(tmp_path, tmp_path / "ft2", *args, "--out", str(tmp_path / "ft2"))
    assert code == 0, _why(err)
    # Rank 0 alone writes the results, logs, checkpoints and per-run status.
    mine, theirs = writes(tmp_path / "ft2", 0), writes(tmp_path / "ft2", 1)
    assert theirs == []
    for name in ("ticket.safetensors", "README.md", "metrics.json", "run.json", "checkpoint.pt",
                 "rewind-seed0.csv"):
        assert any(Path(p).name == name for p in mine), name
    from ticketzoo.cli.main import main

    monkeypatch.setenv("TICKETZOO_HOME", str(tmp_path / "home1"))
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(tmp_path / "ft1")])
    assert exc.value.code == 0
    m1 = json.loads((tmp_path / "ft1" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "ft2" / "metrics.json").read_text())
    assert m1["runs"][0]["confusion"] == m2["runs"][0]["confusion"] and m2["runs"][0]["test_samples"] == 180
    assert [e["train_loss"] for e in m2["runs"][0]["epochs"]] == pytest.approx(
        [e["train_loss"] for e in m1["runs"][0]["epochs"]], abs=TOL)
    a, b = (Ticket.load(tmp_path / d / "ticket.safetensors") for d in ("ft1", "ft2"))
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)
    for s in a.weight_sets:
        sa, sb = a.state_dict(s), b.state_dict(s)
        assert max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa) <= TOL


def test_processes_on_one_machine_share_its_cores(monkeypatch):
    from ticketzoo.train.threads import available_cores

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    alone = available_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert available_cores() == max(1, alone // 2)
