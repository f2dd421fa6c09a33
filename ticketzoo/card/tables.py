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
