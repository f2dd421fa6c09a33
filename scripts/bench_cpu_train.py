"""Training throughput on CPU: fp32 vs bf16 autocast vs channels_last vs both (issue 17).

    python scripts/bench_cpu_train.py [--arch resnet50] [--input-size 32] [--batch-size 128]
                                      [--threads 2] [--steps 4] [--repeat 3] [--json FILE]

Times one SGD step (forward, backward, update) of the architecture through the same
:class:`ticketzoo.train.Runtime` that ``find`` and ``finetune`` use, min over ``repeat``
rounds of ``steps`` steps after a warm-up step, and prints images/s with each setting's ratio
to fp32 measured in the same run. ``ticketzoo find``/``finetune`` default on CPU to
channels_last for torchvision architectures, plus bf16 autocast where the CPU has native bf16
(``train.device.cpu_defaults``), from these numbers: run it on a quiet machine (no other job holding the cores) before trusting a figure.
"""

from __future__ import annotations

import json
import platform
import time

import click

SETTINGS = (("fp32", False, False), ("bf16 autocast", True, False), ("channels_last", False, True),
            ("channels_last + bf16", True, True))


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def step_time(arch: str, input_size: int, batch: int, amp: bool, cl: bool, steps: int, repeat: int) -> float:
    """Seconds per training step: the minimum over ``repeat`` means of ``steps`` steps."""
    import torch
    import torch.nn.functional as F

    from ticketzoo.models import build_model
    from ticketzoo.train import Runtime

    runtime = Runtime.create("cpu", cpu_amp=amp, cpu_channels_last=cl)
    model = runtime.prepare_model(build_model(arch, num_classes=10, input_size=input_size, seed=0))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    g = torch.Generator().manual_seed(0)
    x, y = runtime.to_device(torch.randn(batch, 3, input_size, input_size, generator=g),
                             torch.randint(0, 10, (batch,), generator=g))

    def step() -> None:
        with runtime.autocast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN primitive creation, allocator
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


@click.command()
@click.option("--arch", default="resnet50", show_default=True)
@click.option("--input-size", type=int, default=32, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--steps", type=int, default=4, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None)
def main(arch, input_size, batch_size, threads, steps, repeat, json_out) -> None:
    import torch

    torch.set_num_threads(threads)
    rows = []
    for label, amp, cl in SETTINGS:
        t = step_time(arch, input_size, batch_size, amp, cl, steps, repeat)
        rows.append({"setting": label, "amp": amp, "channels_last": cl, "step_s": t,
                     "images_per_s": batch_size / t})
    base = rows[0]["images_per_s"]
    print(f"{arch} training at {input_size} px, batch {batch_size}, {threads} thread(s), "
          f"torch {torch.__version__}, {_cpu_name()}; min of {repeat} x {steps} steps")
    print(f"{'setting':<22} {'img/s':>8} {'vs fp32':>8}")
    for r in rows:
        r["vs_fp32"] = r["images_per_s"] / base
        print(f"{r['setting']:<22} {r['images_per_s']:8.1f} {r['vs_fp32']:7.2f}x")
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump({"arch": arch, "input_size": input_size, "batch_size": batch_size,
                       "threads": threads, "cpu": _cpu_name(), "torch": torch.__version__,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
