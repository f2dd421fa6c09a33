"""Training-step time against torch's CPU thread count, idle and with the machine busy.

    python scripts/bench_threads.py [--threads 1,2] [--steps 20] [--busy/--no-busy]

For each model (tiny to ResNet-50-sized) it times one Adam step at each thread count, on
an idle machine and again while a busy-loop process holds one core (as another job or a
test suite would), and prints each time as a ratio to the 1-thread time measured in the
same run. ``ticketzoo.train.threads`` picks its default from these numbers.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time

import click

MODELS = (  # arch, input size, channels, batch, kwargs
    ("lenet_300_100", 28, 1, 60, {}),
    ("conv4", 32, 3, 16, {"width": 0.25}),
    ("conv2", 32, 3, 60, {}),
    ("resnet50", 32, 3, 32, {}),
)


def _spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def step_ms(arch: str, size: int, channels: int, batch: int, kwargs: dict, threads: int, steps: int) -> float:
    import torch
    import torch.nn.functional as F

    from ticketzoo.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=channels, input_size=size, **kwargs)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(batch, channels, size, size), torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@click.command()
@click.option("--threads", default="1,2", show_default=True, help="Thread counts to time.")
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--busy/--no-busy", default=True, show_default=True, help="Also time with one core busy.")
def main(threads: str, steps: int, busy: bool) -> None:
    from ticketzoo.models import build_model
    from ticketzoo.train.threads import choose_threads, forward_macs

    counts = [int(t) for t in threads.split(",")]
    for arch, size, channels, batch, kwargs in MODELS:
        model = build_model(arch, num_classes=10, in_channels=channels, input_size=size, **kwargs)
        macs = forward_macs(model, channels, size)
        n = 3 if arch == "resnet50" else steps  # ResNet-50 steps take seconds on 2 cores
        cells = []
        for load in (("idle", "busy") if busy else ("idle",)):
            stop = mp.Event()
            spinner = mp.Process(target=_spin, args=(stop,)) if load == "busy" else None
            if spinner:
                spinner.start()
            try:
                times = {t: step_ms(arch, size, channels, batch, kwargs, t, n) for t in counts}
            finally:
                if spinner:
                    stop.set()
                    spinner.join()
            base = times[counts[0]]
            cells.append(f"{load}: " + ", ".join(f"{t}T {times[t]:.1f} ms ({times[t] / base:.2f}x)"
                                                 for t in counts))
        default = choose_threads(None, model, in_channels=channels, input_size=size)
        click.echo(f"{arch} (batch {batch}, {macs / 1e6:.1f} MMAC/image, default {default}T): "
                   + "; ".join(cells))


if __name__ == "__main__":
    main()
