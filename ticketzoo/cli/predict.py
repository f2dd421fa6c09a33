"""``ticketzoo predict REF --data DIR|FILE``: class and probability per image."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, err_console, print_json


@click.command("predict")
@click.argument("ref")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="An image file, or a folder (read recursively).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the predictions as CSV (path,class,index,probability).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cpu: the sparse runtime; cuda: dense on the GPU.")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default=None,
              help="Weight set [default: trained when the ticket has it, else rewind].")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Images per forward pass (memory vs speed; the predictions do not depend on it).")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, data: Path, out: Path | None, device: str, weights: str | None, batch_size: int,
            force: bool, as_json: bool) -> None:
    """Classify images with a ticket (its card's preprocessing and class names); unreadable files are skipped.

    \b
    Examples:
      ticketzoo predict finetuned/NAME --data ./new_images --out preds.csv
      ticketzoo predict NAME --data image.png --json
    """
    from ticketzoo.api import load
    from ticketzoo.fileio import atomic_write_bytes
    from ticketzoo.predict import image_files, to_csv

    if out is not None:
        if out.exists() and not force:
            raise click.BadParameter(f"{out} exists; pass --force to overwrite it", param_hint="--out")
        if not out.parent.exists():
            raise click.BadParameter(f"folder {out.parent} does not exist", param_hint="--out")
    files = image_files(data)
    ticket = load(ref)
    if weights is not None and weights not in ticket.weight_sets:
        raise click.BadParameter(f"ticket {ticket.name} has no {weights!r} weights "
                                 f"(it has: {', '.join(ticket.weight_sets)})", param_hint="--weights")
    result = _run(ticket, files, weights, device, batch_size, show=not as_json and len(files) > batch_size)
    if out is not None:
        atomic_write_bytes(out, to_csv(result))
    if as_json:
        p = result.preprocess
        print_json({"ticket": ticket.name, "device": device, "classified": len(result.rows),
                    "preprocess": {"resize": p.resize, "pad": p.pad, "flip": p.flip, "declared": result.declared},
                    "skipped": len(result.skipped), "sparse_kernels_unavailable": result.fallback,
                    "predictions": [{"path": r.path, "class": r.label, "index": r.index,
                                     "probability": round(r.probability, 6)} for r in result.rows],
                    "skipped_files": [{"path": s.path, "reason": s.reason} for s in result.skipped]})
    else:
        for r in result.rows:
            console.print(f"{r.path}\t{r.label}\t{r.probability:.4f}")
        for s in result.skipped:
            err_console.print(f"skipped {s.path}: {s.reason}")
        if result.fallback:
            err_console.print(f"note: the sparse runtime runs on torch.sparse here: {result.fallback}")
        where = f"; wrote {out}" if out is not None else ""
        err_console.print(f"{len(result.rows)} images classified, {len(result.skipped)} skipped{where}")
    if not result.rows:
        raise click.ClickException(f"no readable image in {data} ({len(result.skipped)} files skipped)")


def _run(ticket, files, weights, device, batch_size, show: bool):
    from ticketzoo.predict import predict

    if not show:
        return predict(ticket, files, weights=weights, device=device, batch_size=batch_size)
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("classifying", total=len(files))
        return predict(ticket, files, weights=weights, device=device, batch_size=batch_size,
                       progress=lambda done, total: bar.update(task, completed=done))
