"""Tests of ticketzoo.compare and `ticketzoo compare`: two tiny tickets on a generated folder."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import pytest
from scipy.stats import ttest_ind

from conftest import tiny_ticket
from ticketzoo.config.data import DataConfig
from ticketzoo.cli.main import main
from ticketzoo.compare import CompareConfig, SweepTicket, compare, diff, family_members, make_plan
from ticketzoo.compare import jobs as jobs_mod
from ticketzoo.compare.stats import Cell, Row, multiple_testing_note
from synthetic import make_image_folder
from ticketzoo.errors import CheckpointError, ConfigError
from ticketzoo.fileio import sha256_file
from ticketzoo.finetune import FinetuneConfig
from ticketzoo.train import TrainConfig

SPLIT = (0.5, 0.1, 0.4)


def recipe(epochs: int = 6, **kw) -> FinetuneConfig:
    train = TrainConfig(max_epochs=epochs, lr=kw.pop("lr", 0.01), optimizer=kw.pop("optimizer", "adam"),
                        batch_size=8, device="cpu", milestones=(), patience=None)
    return FinetuneConfig(train=train, data=DataConfig(split=SPLIT), seeds=kw.pop("seeds", 2), **kw)


def make_tickets(root, sparsities=(0.5, 0.8)):
    out = []
    for s in sparsities:
        t = tiny_ticket(sparsity=s, name=f"tiny-conv2-s{round(100 * s)}", trained=s != 0.5)
        path = root / f"{t.name}.safetensors"
        t.save(path)
        out.append(SweepTicket.of(t, path, sha256_file(path)))
    return out


def strip(records):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = make_image_folder(root / "stripes", kind="textures", classes=2, per_class=40, size=16)
    return root, data, make_tickets(root)


@pytest.fixture(scope="module")
def full(base):
    root, data, tickets = base
    result = compare(tickets, data, CompareConfig(recipe()), out_dir=root / "full")
    return result


def test_family_rule():
    names = ["a-lenet-s49", "a-lenet-s7", "a-lenet-s93", "a-lenet-x", "a-lenet-s9x", "a-lenet-sparse-s10", "a-lenet"]
    assert family_members("a-lenet", names) == ["a-lenet-s7", "a-lenet-s49", "a-lenet-s93"]
    assert family_members("b", names) == []


def test_plan(base):
    _, _, tickets = base
    jobs, notes = make_plan(tickets, ("rewind", "trained", "reinit", "random_prune", "dense"), [0, 1, 2])
    keys = [j.key for j in jobs]
    assert keys[:3] == ["dense-seed0", "dense-seed1", "dense-seed2"]  # dense once, not per ticket
    assert len(keys) == len(set(keys)) == 3 + 3 * 4 + 3 * 3  # the s50 ticket has no trained weights
    assert notes == ["tiny-conv2-s50 has no source-trained weights: no 'trained' runs for it."]
    with pytest.raises(ConfigError) as e:
        make_plan(tickets, ("rewind", "bogus"), [0])
    assert e.value.field == "conditions"


def test_welch_and_noise():
    def cell(accs):
        return Cell("f", "rewind", "t", "a", 0.5, tuple(accs), tuple(range(len(accs))), len(accs))

    a, b = [0.90, 0.91, 0.92], [0.80, 0.82, 0.81]
    d = diff(cell(a), cell(b))
    assert d.p == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue)
    assert d.delta == pytest.approx(10.0) and d.verdict == "higher"
    assert d.se == pytest.approx(100 * (0.01**2 / 3 + 0.01**2 / 3) ** 0.5)
    noisy = diff(cell([0.90, 0.70, 0.95]), cell([0.85, 0.80, 0.75]))
    assert noisy.p > 0.05 and noisy.verdict == "no difference shown" and "within noise" in noisy.text()
    assert diff(cell([0.9]), cell(b)).verdict.startswith("not tested")  # one run: no test, no claim
    assert diff(cell([]), cell(b)).delta is None
    assert diff(cell([0.8, 0.8]), cell([0.7, 0.7])).p is None  # no seed noise: nothing to test
    rows = [Row(cell(a), d, noisy) for _ in range(10)]
    note = multiple_testing_note(rows)
    assert note.startswith("20 differences were tested at p < 0.05 and 10 passed") and "about 1.0" in note


def test_outputs(full):
    result = full
    assert not result.failures and result.ran == len(result.records) == 2 + 3 * 2 + 4 * 2
    rows = list(csv.DictReader(open(result.files["csv"])))
    assert [r["key"] for r in rows] == [r["key"] for r in result.records]
    assert {r["condition"] for r in rows} == {"dense", "rewind", "trained", "reinit", "random_prune"}
    for r in rows:
        assert r["status"] in ("ok", "chance", "diverged") and r["epochs"] and r["seed"] in ("0", "1")
        if r["status"] == "ok":
            assert 0 <= float(r["test_accuracy"]) <= 1 and int(r["best_epoch"]) >= 1
    data = json.loads(result.files["json"].read_text())
    assert data["seeds"] == [0, 1] and len(data["runs"]) == len(rows)
    summary = {(s["condition"], s["ticket"]): s for s in data["summary"]}
    rewind = summary[("rewind", "tiny-conv2-s80")]
    assert rewind["vs_dense"]["verdict"] and rewind["vs_reinit"] is not None
    assert summary[("dense", None)]["vs_dense"] is None
    ok = [r["test_accuracy"] for r in data["runs"] if r["key"].startswith("tiny-conv2-s80--rewind") and r["status"] == "ok"]
    if ok:
        assert rewind["test_accuracy_mean"] == pytest.approx(sum(ok) / len(ok))
    table = result.files["table"].read_text()
    assert "| condition | sparsity | test accuracy |" in table and "rewind (θk)" in table and "seeds 0, 1" in table
    png, svg = result.files["png"].read_bytes(), result.files["svg"].read_text()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and "weights remaining" in svg and "ticket θk (rewind)" in svg
    if any(r["condition"] == "dense" and r["status"] == "ok" for r in result.records):
        assert "dense from scratch" in svg


def test_rerun_runs_nothing_and_more_seeds_only_add(full, base):
    root, data, tickets = base
    again = compare(tickets, data, CompareConfig(recipe()), out_dir=full.out)
    assert again.ran == 0 and strip(again.records) == strip(full.records)
    more = compare(tickets, data, CompareConfig(recipe(seeds=3), conditions=("rewind", "dense")), out_dir=full.out)
    assert more.ran == 1 + 2  # seed 2 of dense and of each ticket's rewind; seeds 0-1 are reused
    old = {r["key"]: r for r in strip(full.records)}
    assert all(old[r["key"]] == r for r in strip(more.records) if r["key"] in old)


def test_interrupted_then_rerun_equals_uninterrupted(full, base, monkeypatch):
    root, data, tickets = base
    out = root / "interrupted"
    calls = []
    real = jobs_mod.run_job

    def dies_after_five(job, ctx, report=None):  # the sweep is killed during its 6th job
        calls.append(job.key)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(job, ctx, report)

    monkeypatch.setattr("ticketzoo.compare.runner.run_job", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        compare(tickets, data, CompareConfig(recipe()), out_dir=out)
    monkeypatch.setattr("ticketzoo.compare.runner.run_job", real)
    rest = compare(tickets, data, CompareConfig(recipe()), out_dir=out)
    assert rest.ran == len(full.records) - 5
    assert strip(rest.records) == strip(full.records)


def test_a_job_killed_mid_training_resumes_from_its_checkpoint(full, base, monkeypatch):
    root, data, tickets = base
    out, target = root / "midjob", "tiny-conv2-s80--rewind-seed1"
    real = jobs_mod.run_job

    def killed_in_epoch_2(job, ctx, report=None):
        def report_or_die(key, epoch, total):
            if key == target and epoch == 2:  # after epoch 1's checkpoint, before epoch 2's
                raise KeyboardInterrupt
        return real(job, ctx, report_or_die)

    monkeypatch.setattr("ticketzoo.compare.runner.run_job", killed_in_epoch_2)
    cfg = CompareConfig(recipe(), conditions=("rewind",))
    with pytest.raises(KeyboardInterrupt):
        compare(tickets, data, cfg, out_dir=out)
    assert (out / "jobs" / target / "checkpoints").is_dir() and not (out / "jobs" / target / "result.json").exists()
    monkeypatch.setattr("ticketzoo.compare.runner.run_job", real)
    again = compare(tickets, data, cfg, out_dir=out)
    assert again.ran == 1 and not (out / "jobs" / target / "checkpoints").exists()
    mine = {r["key"]: r for r in strip(full.records)}
    assert all(mine[r["key"]] == r for r in strip(again.records))


def test_parallel_equals_serial(full, base):
    root, data, tickets = base
    cfg = CompareConfig(recipe(), conditions=("dense", "rewind", "random_prune"), jobs=2)
    par = compare(tickets, data, cfg, out_dir=root / "parallel")
    serial = {r["key"]: r for r in strip(full.records)}
    assert not par.failures and len(par.records) == 2 + 2 * 2 * 2
    assert strip(par.records) == [serial[r["key"]] for r in par.records]


def test_forced_divergence_is_recorded_and_the_sweep_goes_on(base):
    root, data, tickets = base
    cfg = CompareConfig(recipe(2, lr=1e4, optimizer="sgd"), conditions=("rewind", "reinit", "dense"))
    result = compare(tickets, data, cfg, out_dir=root / "diverged")
    assert len(result.records) == 2 + 2 * 2 * 2 and not result.failures
    assert {r["status"] for r in result.records} == {"diverged"}
    assert all("NaN/inf" in r["reason"] and r["diverged"]["lr"] > 0 for r in result.records)
    rows = list(csv.DictReader(open(result.files["csv"])))
    assert {r["status"] for r in rows} == {"diverged"} and "png" not in result.files
    again = compare(tickets, data, cfg, out_dir=root / "diverged")  # diverged is a result: not rerun
    assert again.ran == 0


def test_a_job_that_raises_does_not_stop_the_sweep(base, monkeypatch):
    root, data, tickets = base
    real = jobs_mod.build

    def broken(job, *a, **k):
        if job.condition == "reinit":
            raise RuntimeError("boom")
        return real(job, *a, **k)

    monkeypatch.setattr(jobs_mod, "build", broken)
    cfg = CompareConfig(recipe(1, seeds=1), conditions=("rewind", "reinit"))
    result = compare(tickets, data, cfg, out_dir=root / "broken")
    assert [k for k, _ in result.failures] == ["tiny-conv2-s50--reinit-seed0", "tiny-conv2-s80--reinit-seed0"]
    assert [r["condition"] for r in result.records] == ["rewind", "rewind"]
    monkeypatch.setattr(jobs_mod, "build", real)
    assert compare(tickets, data, cfg, out_dir=root / "broken").ran == 2  # rerun retries only those


def test_target_ticket_is_found_on_the_training_split_only(base):
    root, data, tickets = base
    cfg = CompareConfig(recipe(seeds=1), conditions=("rewind", "reinit", "dense"), target_rounds=2)
    from ticketzoo.find.target import find_on_target

    with pytest.raises(ConfigError, match="target_finder"):
        compare(tickets[1:], data, cfg, out_dir=root / "target")
    result = compare(tickets[1:], data, cfg, out_dir=root / "target", target_finder=find_on_target)
    found = root / "target" / "target" / "data"
    n = {s: sum(1 for _ in (found / s).rglob("*.png")) for s in ("train", "val", "test")}
    counts = result.setup["data"]["counts"]
    assert n["train"] == sum(counts["train"].values()) and n["val"] == n["test"] == sum(counts["val"].values())
    targets = [t for t in result.setup["tickets"] if t["family"] == "target"]
    assert len(targets) == 2 and targets[0]["sparsity"] < targets[1]["sparsity"]
    keys = {r["key"] for r in result.records}
    assert {f"{t['name']}--{c}-seed0" for t in targets for c in ("rewind", "reinit")} <= keys
    assert sum(1 for k in keys if k.startswith("dense")) == 1  # one dense for both families (same arch)
    again = compare(tickets[1:], data, cfg, out_dir=root / "target", target_finder=find_on_target)
    assert again.ran == 0  # IMP and jobs resume


def test_other_settings_are_refused_unless_forced(full, base):
    root, data, tickets = base
    with pytest.raises(CheckpointError) as e:
        compare(tickets, data, CompareConfig(recipe(lr=0.02)), out_dir=full.out)
    assert e.value.field == "out_dir" and "`force`" in e.value.hint


def test_cli_family(tmp_path, capsys):
    from ticketzoo.registry.api import push

    tickets = make_tickets(tmp_path, (0.5, 0.8))
    for t in tickets:
        push(t.path)
    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=2, per_class=40, size=16)
    args = ["compare", "tiny-conv2", "--data", str(data), "--split", "0.5,0.1,0.4", "--seeds", "2",
            "--conditions", "rewind,dense", "--epochs", "6", "--optimizer", "adam", "--lr", "0.01",
            "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.err
    assert "tiny-conv2-s50--rewind-seed1" in out.err and "[6/6]" in out.err  # progress per job
    assert out.out.count("rewind (θk)") == 2 and "dense" in out.out and "tiny-conv2 tickets" in out.out
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--json"])
    data = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 0 and len(data["summary"]) == 3 and data["failed"] == []
    with pytest.raises(SystemExit) as exit_info:
        main(args[:-2] + ["--lr", "0.5", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "--force" in err and "--out" in err and len(err.strip().splitlines()) == 1


def test_summary_uses_only_runs_that_trained():
    from ticketzoo.compare import summarize

    def rec(cond, seed, status, acc, ticket="t-s50"):
        return {"key": f"{cond}{seed}", "family": "" if cond == "dense" else "t", "condition": cond,
                "ticket": None if cond == "dense" else ticket, "arch": "a", "sparsity": 0.0 if cond == "dense" else 0.5,
                "seed": seed, "status": status, "test_accuracy": acc}

    records = [rec("dense", 0, "ok", 0.80), rec("dense", 1, "ok", 0.82), rec("dense", 2, "diverged", None),
               rec("rewind", 0, "ok", 0.90), rec("rewind", 1, "chance", 0.10), rec("rewind", 2, "ok", 0.92)]
    dense, rewind = summarize(records)
    assert dense.cell.n == 2 and dense.cell.failed == ((2, "diverged"),) and dense.cell.runs == 3
    assert rewind.cell.accuracies == (0.90, 0.92) and rewind.cell.failed == ((1, "chance"),)
    assert rewind.vs_dense.delta == pytest.approx(10.0) and rewind.vs_reinit is None


def test_jobs_shared_over_torchrun_processes_equal_one_process(tmp_path):
    """Under torchrun each process runs its share of the jobs alone; rank 0 reports the
    whole sweep, with the records a single process gives (the same jobs, seeds and split)."""
    import os
    import subprocess
    import sys

    tickets = make_tickets(tmp_path, (0.5,))
    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=2, per_class=40, size=16)
    args = ["compare", tickets[0].path, "--data", str(data), "--split", "0.5,0.1,0.4", "--seeds", "2",
            "--conditions", "rewind,reinit,dense", "--epochs", "6", "--optimizer", "adam", "--lr", "0.01",
            "--batch-size", "8", "--device", "cpu", "--threads", "1", "-q", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TICKETZOO_HOME": str(tmp_path / "home")}
    one = subprocess.run([sys.executable, "-m", "ticketzoo", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "ticketzoo", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count('"summary"') == 1  # rank 0 alone reports
    runs = {}
    for name in ("one", "two"):
        runs[name] = strip(json.loads((tmp_path / name / "results.json").read_text())["runs"])
    assert len(runs["one"]) == 6 and runs["two"] == runs["one"]
    # each job ran once, in one process: one log per job, no failure markers
    logs = sorted(p.parent.name for p in (tmp_path / "two" / "jobs").glob("*/log.csv"))
    assert logs == sorted(r["key"] for r in runs["one"])
    assert not list((tmp_path / "two" / "jobs").glob("*/failed.json"))


def test_force_and_launches_without_a_run_id_are_refused_under_torchrun(base, monkeypatch):
    root, data, tickets = base
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(ConfigError) as e:  # no run id: this launch's files look like any other's
        compare(tickets, data, CompareConfig(recipe()), out_dir=root / "forced-ranks")
    assert e.value.field == "rdzv_id" and "--standalone" in e.value.hint
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    with pytest.raises(ConfigError) as e:
        compare(tickets, data, CompareConfig(recipe()), out_dir=root / "forced-ranks", force=True)
    assert e.value.field == "force"


def test_ranks_share_by_position_in_the_plan(base):
    from ticketzoo.compare.ranks import share

    plan = make_plan(base[2], ("rewind", "dense"), [0, 1, 2])[0]
    keys = [j.key for j in plan]
    # rank 1 sees job 0 already done, rank 0 does not: the shares still cover each job once
    r0, r1 = share(plan, set(), 0, 2), share(plan, {keys[0]}, 1, 2)
    assert sorted(j.key for j in r0 + r1) == sorted(keys)
    assert not {j.key for j in r0} & {j.key for j in r1}


def test_finetune_and_compare_train_the_same_run_identically(tmp_path, cli):
    """The same ticket, folder, seeds and epochs give the same test images and the same test
    accuracy through `finetune --init rewind` and `compare --conditions rewind`, for a
    torchvision network (whose CPU runtime defaults, NHWC, both commands resolve the same way),
    and the split does not move with --seed (issue 28)."""
    import dataclasses

    import torchvision

    import ticketzoo
    from ticketzoo.ticket import Ticket

    model = torchvision.models.resnet18(num_classes=3)
    base = Ticket.from_model(model, ticketzoo.prune(model, 0.9), name="r18-s90", arch="resnet18")
    base = base.with_card(arch=dataclasses.replace(base.card.arch, input_size=32))
    path = tmp_path / "r18.safetensors"
    base.save(path)
    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=3, per_class=12, size=40)
    common = ["--data", data, "--split", "0.5,0.2,0.3", "--epochs", 2, "--seed", 1]
    code, _, err = cli("finetune", path, *common, "--init", "rewind", "--out", tmp_path / "ft", "--quiet")
    assert code in (0, 1), err  # 2 epochs may end at chance: the run is still recorded
    m = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    code, _, err = cli("compare", path, *common, "--conditions", "rewind", "--seeds", 1,
                       "--out", tmp_path / "cmp", "--quiet")
    assert code in (0, 1), err
    row = next(csv.DictReader(open(tmp_path / "cmp" / "runs.csv")))
    run = m["runs"][0]
    assert m["runtime"] == {"device": "cpu", "precision": "fp32", "channels_last": True}
    assert run["test_sha256"] == row["test_sha256"] == m["split"]["test_sha256"]
    assert float(row["test_accuracy"]) == run["test_accuracy"] and row["status"] == run["status"]
    code, _, err = cli("finetune", path, *common[:-1], 0, "--init", "rewind", "--out", tmp_path / "ft0", "--quiet")
    assert json.loads((tmp_path / "ft0" / "metrics.json").read_text())["split"] == m["split"]  # seed 0: same test
