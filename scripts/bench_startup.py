"""Start-up time of the read commands: wall time of ``python -m ticketzoo ...`` in a subprocess.

Each command runs ``--runs`` times against a temporary ``$TICKETZOO_HOME`` holding one
ticket pulled from the bundled catalog (the catalog is the bundled one); the table shows
the fastest run (the least disturbed by other work on the machine) and the median, and
whether the command imported torch (one extra run under ``python -X importtime``).
``--version`` is the floor: Python, click and rich, no registry read.

Usage: python scripts/bench_startup.py [--runs 5] [--root REPO] [--python PY] [--ticket NAME]

``--root`` is the checkout to measure (put first on PYTHONPATH; default: the one holding
this script), so one interpreter can time two trees, e.g. before and after a change.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from ticketzoo.sparse.kernels import cpu_name

DEFAULT_TICKET = "fashionmnist-lenet-300-100-s93"


def commands(ticket: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """(label, arguments after ``-m ticketzoo``, extra environment) of every measured command."""
    prefix = ticket[: max(1, len(ticket) // 2)]
    return [
        ("--version", ["--version"], {}),
        ("list", ["list"], {}),
        (f"info {ticket}", ["info", ticket], {}),
        ("cache", ["cache"], {}),
        ("gc --dry-run", ["gc", "--dry-run"], {}),
        (f"rm {ticket}", ["rm", ticket], {}),
        (f"verify {ticket} --json", ["verify", ticket, "--json"], {}),
        (f"complete: info {prefix}<TAB>", [],
         {"_TICKETZOO_COMPLETE": "bash_complete", "COMP_WORDS": f"ticketzoo info {prefix}", "COMP_CWORD": "2"}),
    ]


def imports_torch(stderr: str) -> bool:
    """Whether ``-X importtime`` output names the module torch (or a submodule of it)."""
    for line in stderr.splitlines():
        if line.startswith("import time:"):
            module = line.rsplit("|", 1)[-1].strip()
            if module == "torch" or module.startswith("torch."):
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (the table shows the fastest)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the checkout to measure (first on PYTHONPATH)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs ticketzoo")
    parser.add_argument("--ticket", default=DEFAULT_TICKET, help="the catalog ticket pulled into the home")
    args = parser.parse_args()

    root = args.root.resolve()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETZOO_") and not k.startswith("COMP_")
                and k != "_TICKETZOO_COMPLETE"}
    base_env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    base_env["NO_COLOR"] = "1"

    with tempfile.TemporaryDirectory(prefix="ticketzoo-bench-") as tmp:
        pristine = Path(tmp) / "home"
        env = {**base_env, "TICKETZOO_HOME": str(pristine)}
        # cwd: `python -m` puts the working directory first on sys.path, before PYTHONPATH, so a
        # run from inside a checkout would measure that checkout, not --root
        pulled = subprocess.run([args.python, "-m", "ticketzoo", "pull", args.ticket], env=env,
                                capture_output=True, text=True, cwd=tmp)
        if pulled.returncode != 0:
            sys.exit(f"setup failed: ticketzoo pull {args.ticket}: {pulled.stderr.strip()}")

        def run(argv: list[str], extra: dict[str, str], *, importtime: bool = False, label: str = ""):
            home = pristine
            if argv[:1] == ["rm"]:  # rm changes the home: each run gets its own copy
                home = Path(tempfile.mkdtemp(dir=tmp))
                shutil.rmtree(home)
                shutil.copytree(pristine, home)
            cmd = [args.python, *(["-X", "importtime"] if importtime else []), "-m", "ticketzoo", *argv]
            start = time.perf_counter()
            done = subprocess.run(cmd, env={**env, "TICKETZOO_HOME": str(home), **extra}, capture_output=True,
                                  text=True, cwd=tmp)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{label}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
            return elapsed, done

        rows = []
        for label, argv, extra in commands(args.ticket):
            run(argv, extra, label=label)  # warm the page cache and the bytecode of this tree
            times = [run(argv, extra, label=label)[0] for _ in range(args.runs)]
            torch_loaded = imports_torch(run(argv, extra, importtime=True, label=label)[1].stderr)
            rows.append((label, min(times), statistics.median(times), "yes" if torch_loaded else "no"))

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores)")
    print(f"Python {platform.python_version()}, torch {torch_version}; tree {root}; "
          f"{args.runs} runs per command")
    width = max(len(r[0]) for r in rows)
    print(f"| {'command':<{width}} | min (s) | median (s) | imports torch |")
    print(f"|{'-' * (width + 2)}|--------:|-----------:|:-------------:|")
    for label, best, median, torch_loaded in rows:
        print(f"| {label:<{width}} | {best:7.2f} | {median:10.2f} | {torch_loaded:^13} |")


if __name__ == "__main__":
    main()
