"""scripts/bundle_zoo_run.py: a finished find run's tickets into catalog cards that pull offline."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import statistics
from pathlib import Path

from click.testing import CliRunner

from conftest import colour_folder
from ticketzoo.config.data import DataConfig
from ticketzoo.find import FindRecipe, find_tickets, resolve_data
from ticketzoo.ticket import Ticket
from ticketzoo.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("bundle_zoo_run", ROOT / "scripts" / "bundle_zoo_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_cards_carry_every_round_and_the_controls(tmp_path, monkeypatch):
    folder = colour_folder(tmp_path / "tiny-rgb")
    spec = resolve_data(str(folder))
    cfg = TrainConfig(max_epochs=3, lr=0.03, batch_size=8, milestones=(), patience=None, device="cpu")
    recipe = FindRecipe(arch="conv2", source=spec.source, data_kind=spec.kind, rounds=3, rewind="0",
                        data=DataConfig(input_size=16, channels=3), arch_kwargs={"width": 0.125}, train=cfg, sparsities=(0.5, 0.8, 0.9),
                        control="reinit", control_at=(0.8,))
    run = find_tickets(recipe, str(folder), run_dir=tmp_path / "runs")
    out = tmp_path / "catalog"
    result = CliRunner().invoke(_script().main, [str(run.run_dir), "--ship", "80,90", "--out", str(out),
                                                 "--deviation", "4 epochs", "--target-dense", "0.99",
                                                 "--data", str(folder)])
    assert result.exit_code == 0, result.output
    assert "recomputed" not in result.output  # scored again per image: the recorded accuracies
    assert sorted(p.name for p in out.iterdir()) == ["tiny-rgb-conv2-s80", "tiny-rgb-conv2-s90"]
    ticket = Ticket.load(out / "tiny-rgb-conv2-s80" / "ticket.safetensors")
    results = ticket.card.extra["source_results"]
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3] and results["seeds"] == 1
    # Paired tests on the same test images: every ticket against dense, round 2's against its control.
    assert [sorted(r["paired"]) for r in results["rounds"]] == [["vs_dense"], ["vs_dense", "vs_reinit"], ["vs_dense"]]
    for r in results["rounds"]:
        for key, t in r["paired"].items():
            other = results["dense"] if key == "vs_dense" else r["controls"]["reinit"]
            assert t["images"] == results["test_images"]
            assert abs(t["delta"] - 100 * (r["ticket"] - other)) < 1e-6  # the recorded accuracies
            assert abs(t["delta"] - 100 * (t["a_only"] - t["b_only"]) / t["images"]) < 1e-6
    catalog_spec = importlib.util.spec_from_file_location("catalog_table", ROOT / "scripts" / "catalog_table.py")
    catalog = importlib.util.module_from_spec(catalog_spec)
    catalog_spec.loader.exec_module(catalog)
    row = next(line for line in catalog.render(out).splitlines() if "`tiny-rgb-conv2-s80`" in line)
    assert "(paired test)" in row and "(untested)" not in row  # the README's catalog table says how it knows
    assert "Paired: ticket − dense" in ticket.card.description and "no test of the difference" not in ticket.card.description
    # epochs per line: rewind "0" trains every round the dense network's 3 epochs
    assert results["dense_epochs"] == 3 and [r["epochs"] for r in results["rounds"]] == [3, 3, 3]
    assert results["rounds"][1]["control_epochs"] == {"reinit": 3}
    assert "Epochs: the dense network 3, this ticket 3 from its rewind point" in ticket.card.description
    assert set(results["rounds"][1]["controls"]) == {"reinit"} and "controls" not in results["rounds"][0]
    assert "one seed" in ticket.card.description and "Deviation from Sabatelli et al.: 4 epochs" in ticket.card.description
    assert results["dense"] == 1.0 and "missed" not in ticket.card.description  # every round trains here
    missed = _script().summary({**results, "dense": 0.9}, results["rounds"][1], 0.99)
    assert "The dense network missed the 99.00% target of this recipe." in missed
    log = json.loads((run.run_dir / "log.json").read_text())
    assert results["dense"] == log["rounds"][0]["test_accuracy"]
    # The catalog serves it offline, verified against the recorded sha256.
    monkeypatch.setenv("TICKETZOO_CATALOG", str(out))
    monkeypatch.setenv("TICKETZOO_HOME", str(tmp_path / "home"))
    from ticketzoo import api

    pulled = api.load("tiny-rgb-conv2-s90")
    assert pulled.name == "tiny-rgb-conv2-s90" and pulled.card.extra["source_results"] == results
    # info and the README show the whole run: dense round 0, every round, the reinit control.
    from ticketzoo.card import family_table

    header, rows = family_table(pulled.card)
    assert [r[0] for r in rows] == ["0", "1", "2", "3"] and rows[0][2].endswith("(dense)")
    assert rows[1][3] == "—" and rows[2][3] == f"{100 * results['rounds'][1]['controls']['reinit']:.2f}%"
    counts = json.loads((run.run_dir / "recipe.json").read_text())["data"]["counts"]
    assert results["test_images"] == counts["test"] > 0
    from ticketzoo.cli.main import cli

    shown = CliRunner().invoke(cli, ["info", "tiny-rgb-conv2-s80"])
    assert shown.exit_code == 0, shown.output
    assert "one seed" in shown.output and "tiny-rgb-conv2-s90" in shown.output and "(dense)" in shown.output
    readme = (out / "tiny-rgb-conv2-s80" / "README.md").read_text()
    assert ("| round | sparsity | ticket | reinit | ticket − dense | ticket − reinit | epochs | CPU-minutes | name |"
            in readme)
    assert rows[2][6] == "3 (reinit 3)" and rows[0][6] == str(results["dense_epochs"]) == "3"  # rewind 0it
    vs_reinit = results["rounds"][1]["paired"]["vs_reinit"]
    p = "no image tells them apart" if vs_reinit["p"] is None else f"p {vs_reinit['p']:.2g}"
    assert rows[2][5] == (f"{vs_reinit['delta']:+.2f} ({p}, "
                          f"{'beyond' if vs_reinit['beyond_noise'] else 'within'} noise)")
    # `info` prints each cell whole on its round's line, even piped (80 columns)
    line = next(x for x in shown.output.splitlines() if x.startswith("2 "))
    assert rows[2][4] in line and rows[2][5] in line and "tiny-rgb-conv2-s80" in line

    from ticketzoo.sparse.kernels import cpu_name

    assert results["machine"].startswith(cpu_name()) and f"CPU-minutes in all on {cpu_name()}" in ticket.card.description

    # A second revision of the same names: HEAD moves, the first stays pullable as NAME@REV.
    # Between the two, round 2's first epoch "took" 10^6 s (the job paused): its minutes count
    # the median epoch, not the pause.
    name, first = "tiny-rgb-conv2-s80", (out / "tiny-rgb-conv2-s80" / "ticket.safetensors").read_bytes()
    old = hashlib.sha256(first).hexdigest()[:12]
    csv_path = run.run_dir / "round_02" / "train.csv"
    lines = csv_path.read_text().splitlines()
    assert lines[0].endswith(",time_s") and len(lines) == 4  # 3 epochs
    csv_path.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",1000000.0", *lines[2:]]) + "\n")
    result = CliRunner().invoke(_script().main, [str(run.run_dir), "--ship", "80,90", "--out", str(out),
                                                 "--deviation", "a second revision", "--machine", "a test box"])
    assert result.exit_code == 0 and f"{name}@{old} kept as an earlier revision" in result.output, result.output
    new = hashlib.sha256((out / name / "ticket.safetensors").read_bytes()).hexdigest()[:12]
    kept = out / name / "revisions" / old
    assert new != old and (kept / "ticket.safetensors").read_bytes() == first
    assert f"A newer revision of this ticket exists**: `{name}@{new}`" in (kept / "README.md").read_text()
    assert "A newer revision" not in (out / name / "README.md").read_text()
    head = api.load(name).card
    assert head.description.endswith("a second revision.") and head.extra["source_results"]["machine"] == "a test box"
    round2 = head.extra["source_results"]["rounds"][1]
    kept_s = [float(x.rsplit(",", 1)[1]) for x in lines[2:]]  # the ticket's epochs 2 and 3, and 10^6 s
    reinit_s = _epoch_s(run.run_dir, 2, "reinit")
    expected = 3 * max(kept_s) + len(reinit_s) * statistics.median(reinit_s)
    assert abs(round2["train_minutes"] * 60 - expected) < 6  # minutes are rounded to 0.1
    assert json.loads(CliRunner().invoke(cli, ["info", name, "--json"]).output)["newer_revision"] is None
    assert "4 epochs" in api.load(f"{name}@{old}").card.description  # the earlier one, verified on import
    assert [e.name for e in api.list_tickets()].count(name) == 1  # list shows HEAD only
    shown = CliRunner().invoke(cli, ["info", f"{name}@{old}", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["newer_revision"] == new, shown.output
    # The local HEAD is now the earlier revision; the bare name still means the catalog's HEAD,
    # as on a machine that never held the earlier one (it stays reachable as NAME@REV).
    shown = CliRunner().invoke(cli, ["info", name, "--json"])
    assert (json.loads(shown.output)["revision"], json.loads(shown.output)["newer_revision"]) == (new, None)
    assert api.load(name).card.description.endswith("a second revision.")
    assert [(e.revision, e.location) for e in api.list_tickets() if e.name == name] == [(new, "local+catalog")]
    assert CliRunner().invoke(cli, ["pull", name]).output.strip().endswith(f"{name}/{new}/ticket.safetensors")
    # A revision the catalog never published (the user's own push of the name) stays what it means.
    own = api.push(str(out / "tiny-rgb-conv2-s90" / "ticket.safetensors"), name=name)
    assert own.revision not in (old, new) and api.load(name).card.sparsity == api.load("tiny-rgb-conv2-s90").card.sparsity
    assert [e.revision for e in api.list_tickets() if e.name == name] == [own.revision]
    missing = str(CliRunner().invoke(cli, ["pull", f"{name}@0123456789ab"]).exception)
    assert "not found" in missing and old in missing and new in missing  # every revision is named


def _epoch_s(run_dir: Path, r: int, line: str) -> list[float]:
    lines = (run_dir / f"round_{r:02d}" / line / "train.csv").read_text().splitlines()[1:]
    return [float(x.rsplit(",", 1)[1]) for x in lines]


def test_no_round_at_the_asked_sparsity_is_an_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.json").write_text(json.dumps({"rounds": [{"round": 0, "line": "imp", "sparsity": 0.0}]}))
    result = CliRunner().invoke(_script().main, [str(run), "--ship", "97", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no round" in result.output
    assert not (tmp_path / "o").exists()
