"""`ticketzoo bench` and `ticketzoo predict` on tiny tickets (a fine-tuned one included)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_ticket
from sparse_build import compiled, sparse_cache  # noqa: F401 - fixtures
from ticketzoo.cli.main import main


@pytest.fixture
def run(capsys):
    """The CLI in this process (a subprocess would import torch again each time): exit code and output."""

    def call(*args, check=None):
        threads = torch.get_num_threads()  # bench --threads sets torch's count for the process
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        torch.set_num_threads(threads)
        captured = capsys.readouterr()
        result = SimpleNamespace(returncode=exit_info.value.code, stdout=captured.out, stderr=captured.err)
        if check is not None:
            assert result.returncode == check, result
        return result

    return call


@pytest.fixture
def ticket_file(tmp_path):
    path = tmp_path / "t.safetensors"
    tiny_ticket(name="bench-t", sparsity=0.8).save(path)
    return path


def images(folder, n=3, size=20, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size + i, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


# --- bench ------------------------------------------------------------------------------------


def test_bench_json(compiled, ticket_file, run):
    out = json.loads(run("bench", str(ticket_file), "--batch-size", "2", "--repeat", "1", "--threads", "1",
                         "--json", check=0).stdout)
    assert out["ticket"] == "bench-t" and out["batch_size"] == 2 and out["input_size"] == 16
    assert out["threads"] == 1 and out["compiled_kernels"] is True
    assert set(out["runs"]) == {"dense-fp32", "dense-bf16", "sparse"}
    assert all(r["ms"] > 0 and r["images_per_s"] > 0 for r in out["runs"].values())
    assert out["max_relative_error"] < 1e-4
    assert 0 < out["ticket_bytes"] and out["dense_safetensors_bytes"] > 0
    assert out["speedup_vs_dense_fp32"] == pytest.approx(
        out["runs"]["dense-fp32"]["ms"] / out["runs"]["sparse"]["ms"], rel=1e-2)
    assert out["verdict"].startswith(("sparse is", "no speed-up"))
    assert out["layers_total"] == 5  # conv2: two convs, three linears


def test_bench_table_and_errors(compiled, ticket_file, run):
    p = run("bench", str(ticket_file), "--repeat", "1", check=0)
    assert "dense-fp32" in p.stdout and "verdict: " in p.stdout and "batch 1 at 16 px" in p.stdout
    assert "file size: ticket" in p.stdout
    p = run("bench", str(ticket_file), "--input-size", "12", check=2)  # a refused flag value: usage  # conv2's head is sized for 16 px
    assert p.stderr.startswith("error: --input-size: conv2 does not take 12 px inputs") and p.stdout == ""
    p = run("bench", "no-such-ticket", check=1)
    assert p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1
    run("bench", str(ticket_file), "--batch-size", "0", check=2)


# --- predict ----------------------------------------------------------------------------------


def test_predict_folder_csv_json_and_skips(compiled, ticket_file, run, tmp_path):
    folder = images(tmp_path / "imgs")
    (folder / "sub").mkdir()
    images(folder / "sub", n=1, seed=1)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "empty.jpg").write_bytes(b"")
    out_csv = tmp_path / "preds.csv"
    p = run("predict", str(ticket_file), "--data", str(folder), "--out", str(out_csv), check=0)
    assert "4 images classified, 2 skipped" in p.stderr and "broken.png" in p.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 4 and {r["class"] for r in rows} <= {"c0", "c1", "c2", "c3"}
    assert all(0 < float(r["probability"]) <= 1 for r in rows)
    data = json.loads(run("predict", str(ticket_file), "--data", str(folder), "--json", check=0).stdout)
    assert data["classified"] == 4 and data["skipped"] == 2
    assert [r["class"] for r in data["predictions"]] == [r["class"] for r in rows]
    assert {s["reason"] for s in data["skipped_files"]} == {"empty file (0 bytes)", "not an image file PIL can read"}
    run("predict", str(ticket_file), "--data", str(folder), "--out", str(out_csv), check=2)  # exists: --force


def test_predict_matches_the_dense_model(compiled, ticket_file, tmp_path):
    """The sparse runtime's classes and probabilities are the dense network's on the same transforms."""
    from ticketzoo.predict import image_files, predict
    from ticketzoo.ticket import Ticket

    ticket = Ticket.load(ticket_file)
    files = image_files(images(tmp_path / "imgs", n=5))
    got = predict(ticket, files, batch_size=2)
    model = ticket.to_model("trained").eval()
    t = ticket.transforms(train=False)
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([t(Image.open(f)) for f in files])), 1)
    assert [r.index for r in got.rows] == probs.argmax(1).tolist()
    assert [r.probability for r in got.rows] == pytest.approx(probs.max(1).values.tolist(), rel=1e-4)


def test_predict_errors(compiled, ticket_file, run, tmp_path):
    p = run("predict", str(ticket_file), "--data", str(tmp_path / "nothing"), check=1)
    assert "no such file or folder" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_text("hello")
    p = run("predict", str(ticket_file), "--data", str(bad), check=1)
    assert "no readable image" in p.stderr
    run("predict", str(ticket_file), "--data", str(bad), "--device", "tpu", check=2)


def test_predict_with_a_finetuned_ticket(compiled, run, tmp_path):
    """A ticket from `finetune` (its fine-tuned weights, its folder's class names) classifies images."""
    from test_finetune import qcfg, quick

    from ticketzoo.finetune import finetune

    data = quick(tmp_path / "stripes")
    result = finetune(tiny_ticket(sparsity=0.5, name="tiny-base"), data, qcfg(), out_dir=tmp_path / "out")
    saved = tmp_path / "out" / "ticket.safetensors"
    assert saved.is_file() and "trained" in result.ticket.weight_sets
    classes = set(result.ticket.card.source.classes)
    # all 80 images (DIR/<class>/*), the ones it trained on included: this checks the plumbing
    out = json.loads(run("predict", str(saved), "--data", str(data), "--json", check=0).stdout)
    assert out["classified"] == 80 and {r["class"] for r in out["predictions"]} <= classes
    right = sum(r["class"] == r["path"].split("/")[-2] for r in out["predictions"])
    assert right / out["classified"] > 0.6  # it learnt the two stripe classes; chance is 0.5
