"""Cost of one IMP round relative to plain dense training of the same epochs.

    python scripts/bench_imp.py                      # CPU: cifar_resnet20 on 32 px shapes
    python scripts/bench_imp.py --arch resnet50 --input-size 224 --device cuda --epochs 2

Times, in one process and on the same data:

* dense: ``train`` of E epochs without masks;
* IMP round: magnitude-prune 20% of the dense result (global), rewind the survivors to θ0,
  ``train`` E epochs under the mask (one ``_foreach_mul_`` after each step), then build and
  save the round's ticket (rewind + trained weight sets).

Dense and IMP runs alternate ``--repeats`` times (which goes first alternates too) and the
fastest of each counts (the machine may be shared). Prints the ratio (target <= 1.05x) and training throughput in images/s.
No validation pass is timed: both sides would pay the same.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


@click.command()
@click.option("--arch", default="cifar_resnet20", show_default=True)
@click.option("--width", type=float, default=None, help="LTH architectures' channel multiplier.")
@click.option("--input-size", type=int, default=32, show_default=True)
@click.option("--classes", type=int, default=4, show_default=True)
@click.option("--per-class", type=int, default=64, show_default=True, help="Synthetic images per class.")
@click.option("--epochs", type=int, default=2, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: 1 on CPU, since a shared machine's cores thrash "
                   "when oversubscribed; 0 keeps torch's own choice).")
@click.option("--repeats", type=int, default=2, show_default=True)
def main(arch, width, input_size, classes, per_class, epochs, batch_size, device, threads, repeats):
    import torch

    from ticketzoo.card import ArchConfig, SourceData
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite\'s synthetic images
    from synthetic import make_image_folder
    from ticketzoo.data.loading import load_source
    from ticketzoo.config.data import DataConfig
    from ticketzoo.data.source import resolve_data
    from ticketzoo.models import build_model, classifier_names
    from ticketzoo.pruning import full_masks, magnitude_prune
    from ticketzoo.ticket import Ticket
    from ticketzoo.train import TrainConfig, cpu_state_dict, resolve_device, train

    dev = resolve_device(device)
    if threads is None and dev.type == "cpu":
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    kwargs = {"width": width} if width is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = make_image_folder(Path(tmp) / "shapes", kind="shapes", classes=classes,
                                   per_class=per_class, size=input_size, seed=0)
        src = load_source(resolve_data(str(folder)),
                          DataConfig(input_size=input_size, channels=3, split=(0.9, 0.1, 0.0)),
                          batch_size=batch_size, seed=0, device=dev)
        print(f"data: {src.counts['train']} train images at {input_size} px "
              f"({time.perf_counter() - t0:.1f}s to make); device {dev}, "
              f"{torch.get_num_threads()} CPU thread(s)")
        model = build_model(arch, num_classes=classes, input_size=input_size, init="xavier",
                            seed=0, **kwargs)
        theta0 = cpu_state_dict(model)
        config = TrainConfig(max_epochs=epochs, milestones=(), patience=None, batch_size=batch_size,
                             device=str(dev))
        arch_cfg = ArchConfig(arch, classes, 3, input_size, src.mean, src.std,
                              classifier_names(model), kwargs)
        source = SourceData("shapes", src.classes, "synthetic shapes (benchmark)")

        def dense() -> tuple[float, dict]:
            model.load_state_dict(theta0)
            src.generator.manual_seed(0)
            _sync(dev)
            start = time.perf_counter()
            train(model, None, src.train, None, config)
            _sync(dev)
            return time.perf_counter() - start, cpu_state_dict(model)

        def imp_round(trained: dict) -> tuple[float, float]:
            src.generator.manual_seed(0)
            _sync(dev)
            start = time.perf_counter()
            masks = magnitude_prune(trained, full_masks(model), 0.2, scope="global")
            model.load_state_dict(theta0)  # rewind (θ0 here; θk costs the same copy)
            mid = time.perf_counter()
            train(model, masks, src.train, None, config)
            _sync(dev)
            trained_at = time.perf_counter()
            ticket = Ticket.from_model(theta0, masks, name="bench", arch=arch_cfg, source=source,
                                       trained=cpu_state_dict(model))
            ticket.save(Path(tmp) / "bench.safetensors")
            end = time.perf_counter()
            return end - start, (mid - start) + (end - trained_at)

        dense_times, imp_times, extra_times = [], [], []
        _, trained = dense()  # warm-up (kernel selection, allocator) and the weights to prune
        imp_round(trained)
        for rep in range(repeats):  # alternate which side goes first: no order bias
            for side in (("dense", "imp") if rep % 2 == 0 else ("imp", "dense")):
                if side == "dense":
                    dense_times.append(dense()[0])
                else:
                    seconds, extra = imp_round(trained)
                    imp_times.append(seconds)
                    extra_times.append(extra)
        d, i = min(dense_times), min(imp_times)
        images = epochs * src.counts["train"]
        print(f"dense training, {epochs} epoch(s):  {d:8.2f} s  ({images / d:,.0f} images/s)")
        print(f"one IMP round (prune+rewind+masked training+ticket save): {i:8.2f} s  "
              f"({images / i:,.0f} images/s)")
        print(f"  of which prune + rewind + ticket save: {min(extra_times):.3f} s")
        print(f"ratio IMP round / dense: {i / d:.3f}x  (target <= 1.05x)")
        print(f"all dense: {', '.join(f'{x:.2f}' for x in dense_times)}; "
              f"all IMP: {', '.join(f'{x:.2f}' for x in imp_times)}")


if __name__ == "__main__":
    main()
