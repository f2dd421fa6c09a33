"""`compare --folds` and `finetune --compare --folds`: k-fold designs, paired statistics, resolution.

The first tests pin what `compare` and `finetune --compare` computed before folds existed
(numbers recorded on the code of commit 60b8115): the default, one split, must stay exactly that.
"""

from __future__ import annotations

import pytest

from conftest import tiny_ticket
from ticketzoo.config.data import DataConfig
from ticketzoo.compare import CompareConfig, SweepTicket, compare
from synthetic import make_image_folder
from ticketzoo.fileio import sha256_file
from ticketzoo.finetune import FinetuneConfig, finetune
from ticketzoo.train import TrainConfig

# key: (status, test accuracy, test images, epochs, best epoch), as recorded before folds existed
PINNED = {
    "dense-seed0": ("ok", 0.6875, 32, 4, 4),
    "dense-seed1": ("chance", 0.5625, 32, 4, 4),
    "tiny-conv2-s80--rewind-seed0": ("ok", 0.71875, 32, 4, 4),
    "tiny-conv2-s80--rewind-seed1": ("ok", 0.78125, 32, 4, 4),
    "tiny-conv2-s80--reinit-seed0": ("chance", 0.625, 32, 4, 4),
    "tiny-conv2-s80--reinit-seed1": ("chance", 0.46875, 32, 4, 4),
}
PINNED_FINGERPRINT = "cbabfdfa365d057027fc4311219694b8f8f0ad68757bf2c28c4603a46ac918f5"
PINNED_FINETUNE = [("rewind", 0, 0.71875, 4), ("rewind", 1, 0.78125, 4), ("dense", 0, 0.6875, 4),
                   ("dense", 1, 0.5625, 4)]


def _train(epochs: int = 4) -> TrainConfig:
    return TrainConfig(max_epochs=epochs, lr=0.01, optimizer="adam", batch_size=8, device="cpu", milestones=(),
                       patience=None)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinned")
    data = make_image_folder(root / "stripes", kind="textures", classes=2, per_class=40, size=16)
    t = tiny_ticket(sparsity=0.8, name="tiny-conv2-s80")
    path = root / "t.safetensors"
    t.save(path)
    return root, data, t, SweepTicket.of(t, path, sha256_file(path))


def _pinned_config(**kw) -> FinetuneConfig:
    return FinetuneConfig(train=_train(), data=DataConfig(split=(0.5, 0.1, 0.4)), seeds=2, threads=1, **kw)


def test_one_split_compare_reproduces_the_numbers_from_before_folds(pinned):
    root, data, _, sweep = pinned
    res = compare([sweep], data, CompareConfig(_pinned_config(), conditions=("rewind", "reinit", "dense")),
                  out_dir=root / "cmp")
    got = {r["key"]: (r["status"], r["test_accuracy"], r["test_samples"], r["epochs"], r["best_epoch"])
           for r in res.records}
    assert got == PINNED
    assert res.setup["fingerprint"] == PINNED_FINGERPRINT  # old --out folders still resume


def test_one_split_finetune_compare_reproduces_the_numbers_from_before_folds(pinned):
    root, data, ticket, _ = pinned
    result = finetune(ticket, data, _pinned_config(compare=("dense",)), out_dir=root / "ft")
    assert [(r.init, r.seed, r.test.accuracy, r.train.best_epoch) for r in result.runs] == PINNED_FINETUNE


# --- folds ---------------------------------------------------------------------------

def test_folds_are_stratified_disjoint_and_cover_every_image():
    from ticketzoo.data.folds import assign_folds, fold_split

    groups = {"a": [f"a{i}" for i in range(23)], "b": [f"b{i}" for i in range(10)], "c": [f"c{i}" for i in range(7)]}
    folds = assign_folds(groups, 5, seed=3)
    flat = [x for f in folds for x in f]
    assert sorted(flat) == sorted(x for items in groups.values() for x in items)  # cover, each once
    assert len(flat) == len(set(flat))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1  # 40 images: 8 per fold
    for name, items in groups.items():  # stratified: each class split as evenly as it can be
        per = [sum(x in items for x in f) for f in folds]
        assert max(per) - min(per) <= 1, (name, per)
    assert assign_folds(groups, 5, seed=3) == folds and assign_folds(groups, 5, seed=4) != folds
    tests = []
    for f in range(5):
        train, val, test = fold_split(groups, 5, f, (0.8, 0.1, 0.1), seed=3)
        assert test == folds[f] and not set(train) & set(val) and not (set(train) | set(val)) & set(test)
        assert sorted(train + val + test) == sorted(flat)
        assert {x[0] for x in val} == {"a", "b", "c"}  # val is stratified too: every class in it
        assert len(val) == pytest.approx(len(train + val) / 9, abs=3)  # val 0.1 of 0.9
        tests += test
    assert sorted(tests) == sorted(flat)


def test_a_folder_that_cannot_be_folded_is_refused(tmp_path):
    from ticketzoo.data import discover_folder
    from ticketzoo.data.folds import fold_dataset
    from ticketzoo.errors import ConfigError

    split = discover_folder(make_image_folder(tmp_path / "a", kind="textures", classes=2, per_class=4, size=8))
    with pytest.raises(ConfigError, match="at least 5 images in every class") as e:
        fold_dataset(split, 5, 0, (0.8, 0.1, 0.1), 0)
    assert e.value.field == "folds"
    pre = discover_folder(make_image_folder(tmp_path / "b", kind="textures", classes=2, per_class=10, size=8,
                                            layout="presplit"))
    with pytest.raises(ConfigError, match="already split"):
        fold_dataset(pre, 3, 0, (0.8, 0.1, 0.1), 0)
    assert fold_dataset(split, 4, 3, (0.8, 0.1, 0.1), 0).test  # 4 folds of 4 per class: fine


# --- paired statistics --------------------------------------------------------------

def test_paired_test_wilson_and_holm_match_their_definitions():
    from scipy.stats import ttest_rel, wilcoxon

    from ticketzoo.significance import holm, min_detectable_difference, paired_test, wilson

    a = [0.90, 0.85, 0.88, 0.91, 0.87, 0.86]
    b = [0.80, 0.84, 0.83, 0.85, 0.86, 0.80]
    t = paired_test(a, b)
    d = [100 * (x - y) for x, y in zip(a, b)]
    assert t.pairs == 6 and t.delta == pytest.approx(sum(d) / 6)
    assert t.p == pytest.approx(ttest_rel(a, b).pvalue) and t.p_wilcoxon == pytest.approx(wilcoxon(d).pvalue)
    same = paired_test([0.8, 0.9], [0.8, 0.9])
    assert same.same_everywhere and same.p is None and same.delta == 0
    lo, hi = wilson(81, 100)  # the textbook value: 0.7222 - 0.8749
    assert lo == pytest.approx(0.7222, abs=1e-4) and hi == pytest.approx(0.8749, abs=1e-4)
    assert holm([0.001, 0.03, 0.04]) == 1 and holm([0.001, 0.02, 0.04]) == 3 and holm([0.001, 0.01, 0.01]) == 3 and holm([0.2]) == 0
    assert min_detectable_difference(300, 9) < min_detectable_difference(30, 9) < min_detectable_difference(30, 2)
    assert min_detectable_difference(30, 0) is None


def test_resolution_line_and_warning():
    from ticketzoo.significance import resolution

    one = resolution(1, 3, [36], folder_images=360)
    lines = one.lines()
    assert "each evaluation tests the same 36 images (one image = 2.8 points)" in lines[0]
    assert one.warn and "`folds` 5 tests all 360 images" in lines[1]
    five = resolution(5, 2, [72] * 5)
    assert five.images == 360 and five.df == 9 and five.mdd < one.mdd
    assert "every one of the 360 images is tested once per seed (one image = 0.28 points)" in five.lines()[0]
    big = resolution(5, 3, [2000] * 5)
    assert not big.warn and len(big.lines()) == 1


# --- compare --folds ----------------------------------------------------------------

@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    root = tmp_path_factory.mktemp("folded")
    data = make_image_folder(root / "stripes", kind="textures", classes=2, per_class=24, size=16)
    t = tiny_ticket(sparsity=0.5, name="tiny-conv2-s50", trained=False)
    path = root / "t.safetensors"
    t.save(path)
    return root, data, SweepTicket.of(t, path, sha256_file(path))


def _folded_config(epochs: int, seeds: int = 2, seed: int = 0, folds: int = 3) -> FinetuneConfig:
    train = TrainConfig(max_epochs=epochs, lr=0.01, optimizer="adam", batch_size=8, device="cpu", milestones=(),
                        patience=None, seed=seed)
    return FinetuneConfig(train=train, seeds=seeds, threads=1, folds=folds)


def test_compare_with_folds_scores_every_image_once_per_seed_and_condition(folded):
    import json

    root, data, sweep = folded
    res = compare([sweep], data, CompareConfig(_folded_config(10), conditions=("rewind", "dense")),
                  out_dir=root / "k3")
    assert len(res.records) == 2 * 3 * 2 and not res.failures
    for condition in ("rewind", "dense"):
        for seed in (0, 1):
            mine = [r for r in res.records if r["condition"] == condition and r["seed"] == seed]
            assert sorted(r["fold"] for r in mine) == [0, 1, 2]
            assert sum(r["test_samples"] for r in mine) == 48  # every image once
    folds = res.setup["folds"]
    tested = [p for f in folds["test"] for p in f]
    assert len(tested) == len(set(tested)) == folds["images"] == 48
    assert [s["test"] for s in folds["sizes"]] == [16, 16, 16]
    saved = json.loads(res.files["json"].read_text())
    assert saved["folds"]["k"] == 3 and saved["resolution"]["test_images"] == 48
    rewind = next(r for r in res.rows if r.cell.condition == "rewind")
    assert rewind.vs_dense.pairs == 6 and "pairs, t p" in rewind.vs_dense.text() or \
        rewind.vs_dense.verdict.startswith("not tested")
    row = next(s for s in saved["summary"] if s["condition"] == "dense")
    assert row["test_images"] == 48 and row["scored"] == 96 and len(row["wilson95"]) == 2
    ok = [r for r in res.records if r["condition"] == "dense" and r["status"] in ("ok", "chance")]
    assert row["pooled_accuracy"] == pytest.approx(sum(r["test_correct"] for r in ok) / sum(r["test_samples"] for r in ok))
    csv_head = res.files["csv"].read_text().splitlines()[0]
    assert ",fold,seed," in csv_head and "test_samples" in csv_head
    assert "3 stratified folds" in res.caption and "[" in res.files["table"].read_text()
    again = compare([sweep], data, CompareConfig(_folded_config(10), conditions=("rewind", "dense")),
                    out_dir=root / "k3")
    assert again.ran == 0 and [r["test_accuracy"] for r in again.records] == [r["test_accuracy"] for r in res.records]


def test_a_planted_difference_is_found_and_identical_conditions_are_not(tmp_path):
    """Dense trained for 1 epoch against dense trained for 20, on the same 3 folds x 3
    seeds; then the 20-epoch sweep against an identical rerun of itself."""
    from ticketzoo.compare.stats import cells, diff

    data = make_image_folder(tmp_path / "stripes", kind="textures", classes=2, per_class=20, size=16)
    t = tiny_ticket(sparsity=0.5, name="tiny-conv2-s50", trained=False)
    t.save(tmp_path / "t.safetensors")
    sweep = SweepTicket.of(t, tmp_path / "t.safetensors", sha256_file(tmp_path / "t.safetensors"))

    def dense(epochs: int, out: str):
        config = CompareConfig(_folded_config(epochs, seeds=3), conditions=("dense",))
        return cells(compare([sweep], data, config, out_dir=tmp_path / out).records)[0]

    short, long = dense(1, "short"), dense(20, "long")
    found = diff(long, short)
    assert found.verdict == "higher" and found.pairs == 9 and found.p < 0.01 and found.delta > 10
    same = diff(long, dense(20, "again"))
    assert same.pairs == 9 and same.delta == 0 and same.verdict == "not tested: identical on every fold and seed"


def _simulated(accuracy: float, rng, *, folds: int = 5, seeds: int = 2, per_fold: int = 60,
               condition: str = "dense") -> list[dict]:
    """Records of one condition whose every test verdict is a coin with ``accuracy``."""
    return [{"family": "", "condition": condition, "ticket": None, "arch": "a", "sparsity": 0.0, "seed": s,
             "fold": f, "status": "ok", "test_accuracy": rng.binomial(per_fold, accuracy) / per_fold,
             "test_samples": per_fold} for f in range(folds) for s in range(seeds)]


def test_paired_statistics_hold_their_error_rates_on_simulated_runs():
    """Same accuracy on both sides: p < 0.05 about 5% of the time; 8 points apart on
    300 images x 2 seeds: found most of the time; one image is never a finding."""
    import numpy as np

    from ticketzoo.compare.stats import cells, diff

    rng = np.random.default_rng(0)
    trials = 200  # deterministic (seeded); each trial runs an exact Wilcoxon permutation test (~0.1 s)
    null = [diff(cells(_simulated(0.85, rng))[0], cells(_simulated(0.85, rng))[0]) for _ in range(trials)]
    false = sum(d.verdict in ("higher", "lower") for d in null) / trials
    assert 0.01 <= false <= 0.09, false
    planted = [diff(cells(_simulated(0.90, rng))[0], cells(_simulated(0.82, rng))[0]) for _ in range(trials)]
    assert sum(d.verdict == "higher" for d in planted) / trials > 0.9
    assert not any(d.verdict == "lower" for d in planted)


def test_target_ticket_and_folds_are_refused_together(folded):
    from ticketzoo.errors import ConfigError

    root, data, sweep = folded
    with pytest.raises(ConfigError) as e:
        compare([sweep], data, CompareConfig(_folded_config(1), target_rounds=1), out_dir=root / "target")
    assert e.value.field == "target_rounds"


def test_cli_prints_the_resolution_and_suggests_folds(folded, capsys):
    from ticketzoo.cli.main import main

    root, data, sweep = folded
    args = ["compare", sweep.path, "--data", str(data), "--conditions", "dense", "--seeds", "2", "--epochs", "10",
            "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--device", "cpu", "--threads", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(root / "cli1")])
    err = capsys.readouterr().err
    assert exit_info.value.code in (0, 1), err  # 1: no run beat chance on 6 test images, said so
    assert "resolution: one split x 2 seed(s); each evaluation tests the same 4 images (one image = 25.0 points)" in err
    assert "warning: this design cannot resolve differences of a few points; --folds 5 tests all 48 images" in err
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--folds", "3", "--out", str(root / "cli3")])
    out = capsys.readouterr()
    assert exit_info.value.code in (0, 1), out.err  # the table is printed either way
    assert "resolution: 3 folds x 2 seed(s); each evaluation tests 16 images" in out.err
    assert "3 stratified folds" in out.out


# --- finetune --compare --folds -----------------------------------------------------

def test_finetune_compare_with_folds_runs_every_fold_and_pairs_the_inits(folded, capsys):
    import json

    from ticketzoo.cli.main import main

    root, data, sweep = folded
    out = root / "ft3"
    args = ["finetune", sweep.path, "--data", str(data), "--compare", "dense", "--seeds", "2", "--folds", "3",
            "--epochs", "6", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--device", "cpu",
            "--threads", "1", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    res = capsys.readouterr()
    assert exit_info.value.code in (0, 1), res.err  # 1: no rewind run above chance, said so
    assert "resolution: 3 folds x 2 seed(s); each evaluation tests 16 images" in res.err
    assert "run 12/12: init dense, fold 2, seed 1" in res.err
    metrics = json.loads((out / "metrics.json").read_text())
    runs = metrics["runs"]
    assert sorted((r["init"], r["fold"], r["seed"]) for r in runs) == sorted(
        (i, f, s) for i in ("rewind", "dense") for f in range(3) for s in (0, 1))
    for init in ("rewind", "dense"):
        for seed in (0, 1):
            assert sum(r["test_samples"] for r in runs if r["init"] == init and r["seed"] == seed) == 48
    assert metrics["folds"]["k"] == 3 and metrics["resolution"]["test_images"] == 48
    assert any("pooled over the folds" in n and "(fold, seed) pairs" in n for n in metrics["notes"])
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())[0] == "dense-fold0-seed0"
