"""Cards as text: which fields differ, and the source results over seeds as table rows."""

from __future__ import annotations

import dataclasses

from ticketzoo.card.schema import Card


def card_differences(a: Card, b: Card) -> list[str]:
    """Top-level card fields whose values differ (``arch``, ``sparsity``, ...)."""
    return [f.name for f in dataclasses.fields(Card) if getattr(a, f.name) != getattr(b, f.name)]


SEED_TABLE_HEADER = ("round", "sparsity", "ticket", "reinit", "ticket − dense", "ticket − reinit")


def seed_table(card: Card) -> tuple[tuple[str, ...], list[tuple[str, ...]]] | None:
    """The card's source results over seeds as text rows, or None when it has none.

    ``extra["source_dense"]`` and ``extra["source_results"]`` (one row per round with the
    ticket's and the reinit control's accuracy over seeds and Welch tests against the dense
    network and the control) are written by ``scripts/make_starter_zoo.py``.
    """
    dense, results = card.extra.get("source_dense"), card.extra.get("source_results")
    if not isinstance(dense, dict) or not isinstance(results, list):
        return None

    def stat(s: dict) -> str:
        std = s.get("std")
        return f"{100 * s['mean']:.2f}%" + (f" ± {100 * std:.2f}" if std is not None else "")

    def test(t: dict) -> str:
        return f"{100 * t['diff']:+.2f} (p {t['p']:.3f}, {t['verdict']})"

    rows = [("0", "0.0000", stat(dense) + " (dense)", "—", "—", "—")]
    for r in results:
        rows.append((str(r["round"]), f"{r['sparsity']:.4f}", stat(r["ticket"]), stat(r["reinit"]),
                     test(r["ticket_vs_dense"]), test(r["ticket_vs_reinit"])))
    return SEED_TABLE_HEADER, rows


FAMILY_TABLE_HEADER = ("round", "sparsity", "ticket", "reinit", "ticket − dense", "ticket − reinit", "epochs",
                       "CPU-minutes", "name")


def family_table(card: Card) -> tuple[tuple[str, ...], list[tuple[str, ...]]] | None:
    """The source results of the one-seed run a ticket was bundled from, as text rows: dense
    round 0, every round's ticket and its reinit control where one was trained (``—``: not
    trained), each difference with its paired test where the card records one (McNemar's p,
    and whether it is beyond training noise; "untested" where it does not), the epochs and
    CPU-minutes of each round (the controls' included), written by
    ``scripts/bundle_zoo_run.py`` in ``extra["source_results"]``; None when the card has none
    (or holds results over seeds, :func:`seed_table`)."""
    results = card.extra.get("source_results")
    if not isinstance(results, dict) or not isinstance(results.get("rounds"), list):
        return None

    def pct(x) -> str:
        return "—" if x is None else f"{100 * x:.2f}%"

    def versus(delta, test) -> str:
        if delta is None:
            return "—"
        if not isinstance(test, dict):
            return f"{100 * delta:+.2f} (untested)"
        p = "no image tells them apart" if test["p"] is None else f"p {test['p']:.2g}"
        return f"{test['delta']:+.2f} ({p}, {'beyond' if test['beyond_noise'] else 'within'} noise)"

    def number(x) -> str:
        return "—" if x is None else f"{x:g}"

    rows = [("0", "0.0000", pct(results["dense"]) + " (dense)", "—", "—", "—", number(results.get("dense_epochs")),
             number(results.get("dense_minutes")), "")]
    for r in results["rounds"]:
        controls, paired = r.get("controls") or {}, r.get("paired") or {}
        reinit = controls.get("reinit")
        epochs = number(r.get("epochs"))
        control_epochs = (r.get("control_epochs") or {}).get("reinit")
        if control_epochs is not None:
            epochs += f" (reinit {number(control_epochs)})"
        rows.append((str(r["round"]), f"{r['sparsity']:.4f}", pct(r["ticket"]), pct(reinit),
                     versus(r["ticket_minus_dense"], paired.get("vs_dense")),
                     versus(None if reinit is None else r["ticket"] - reinit, paired.get("vs_reinit")),
                     epochs, number(r.get("train_minutes")), str(r.get("name") or "")))
    return FAMILY_TABLE_HEADER, rows


def family_caption(card: Card) -> str:
    """What :func:`family_table` rests on: one seed, the test images, the CPU-minutes."""
    r = card.extra["source_results"]
    images = f" on {r['test_images']} test images" if r.get("test_images") else ""
    paired = any(isinstance(row.get("paired"), dict) for row in r["rounds"])
    tests = ("; differences in points, p: exact McNemar test on the same test images, beyond noise: also "
             "over twice the training-noise sd of two runs" if paired else "")
    return (f"Source test accuracy of the run this ticket comes from (one seed{images}; "
            f"{r.get('train_cpu_minutes', '?')} CPU-minutes of training in all{tests})")


@dataclasses.dataclass(frozen=True)
class SourceSummary:
    """What a ticket is on its source data, at a glance (``list --wide``): its own and the dense
    network's test accuracy, its reinit control's where one was trained, over ``seeds`` seeds."""

    ticket: float | None
    dense: float | None
    reinit: float | None
    seeds: int
    # against the reinit control: over seeds the Welch test's verdict ("better", "no difference
    # shown", ...); one seed with paired per-image tests "higher"/"lower" when the difference is
    # beyond training noise, else "no difference shown"; one seed without them "higher (untested)"
    # or "lower (untested)"; None: no control was trained
    vs_reinit: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def source_summary(card: Card) -> SourceSummary | None:
    """The card's source results for its own round (seed tables of the starter zoo, one-seed
    family results of the ResNet-50 zoo, else its ``find`` metrics); None without any."""
    results, dense = card.extra.get("source_results"), card.extra.get("source_dense")
    own = card.recipe.rounds
    if isinstance(results, list) and isinstance(dense, dict):  # over seeds (scripts/make_starter_zoo.py)
        row = next((r for r in results if r.get("round") == own), None)
        if row is None:
            return None
        versus = row["ticket_vs_reinit"]
        return SourceSummary(row["ticket"]["mean"], dense["mean"], row["reinit"]["mean"],
                             len(row["ticket"].get("per_seed") or [0]), versus.get("verdict"))
    if isinstance(results, dict) and isinstance(results.get("rounds"), list):  # one seed (bundle_zoo_run.py)
        row = next((r for r in results["rounds"] if r.get("round") == own), None)
        if row is None:
            return None
        reinit = (row.get("controls") or {}).get("reinit")
        paired = (row.get("paired") or {}).get("vs_reinit")
        if reinit is None or row["ticket"] is None:
            versus = None
        elif isinstance(paired, dict):
            versus = ("higher" if paired["delta"] > 0 else "lower") if paired.get("beyond_noise") else "no difference shown"
        else:
            versus = ("higher" if row["ticket"] > reinit else "lower") + " (untested)"
        return SourceSummary(row["ticket"], results.get("dense"), reinit, int(results.get("seeds", 1)), versus)
    if card.recipe.method == "imp" and card.metrics:  # a find ticket: its run's rounds, no control recorded
        by_round = {m.round: m.test_accuracy for m in card.metrics}
        return SourceSummary(by_round.get(own), by_round.get(0), None, 1, None)
    return None
