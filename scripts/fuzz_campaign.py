#!/usr/bin/env python
"""A fault and fuzzing campaign against ticketzoo: mutants, CLI runs on them, kills.

    python scripts/fuzz_campaign.py [--seconds 300] [--seed 0] [--workdir DIR]

Four phases share the time budget (``--seconds``):

1. **library mutants**: real tickets (tiny LTH models and the bundled starter tickets)
   mutated by ``tests/test_fuzz.py``'s mutations, flipped bytes as well as header JSON and
   tensor edits with a recomputed ``payload_sha256``; each mutant is loaded, verified,
   made dense and built into a model. Anything but a ticketzoo error is a *foreign
   exception*; the peak of traced allocations per mutant is kept.
2. **CLI on mutants**: a worker process runs the CLI entry point (``verify``, ``info``,
   ``export``, ``push``, ``list``) on mutants, in-process to skip a Python start-up per
   run, plus some real ``python -m ticketzoo`` runs. A *traceback* is an exit code other
   than 0/1/2, "error: unexpected", a Python traceback or a multi-line error.
3. **kills at random points**: a forked push or pull SIGKILLs itself at a random
   filesystem call (mkdir/open/fsync/rename/replace/unlink/rmdir).
4. **kill -9 of real CLI runs** at random times. After every kill the registry is read:
   a *visible partial ticket* is a name or revision that does not verify. Leftovers
   (``.tmp-*`` ...) still there after the next successful run are counted too.

``--caches-and-text N`` runs, instead, N tickets whose card text carries control characters
through info/verify/push/list/predict (none may print a raw ESC, CSI or BEL), and N `predict`
processes on a sparse-runtime cache damaged at random (truncated, empty or garbage kernel
library; wrong-typed or garbage choice cache; read-only folders): none may end in a signal
(SIGBUS was exit 135) or a traceback.

``--races N`` runs, instead, N **racing CLI pairs**: ``rm``/``gc --old-revisions`` against
``pull``/``verify``/``push``/``finetune`` of a ticket with two revisions, started together
(half of them released at once from a held registry lock, half at random offsets). A
*lost path* is a reader that exits 0 printing a path that does not exist when it prints
(checked in its own process) or, against ``gc``, that gc then removed (gc must spare what
was pulled last); tracebacks and partial tickets are counted as above.

Prints the figures and exits 1 when any foreign exception, traceback or partial ticket
was found.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the mutations and kill helpers live with the tests

COMMANDS = ("verify", "info", "export", "push", "list")


def _mb(kb: int) -> float:
    return kb / 1024  # ru_maxrss is in KiB on Linux


def base_tickets() -> list[bytes]:
    from conftest import tiny_ticket

    out = [tiny_ticket("conv2", 0.7, name="fz-conv2").to_bytes(),
           tiny_ticket("lenet_300_100", 0.9, name="fz-lenet", input_size=8).to_bytes(),
           tiny_ticket("cifar_resnet20", 0.5, name="fz-resnet", input_size=8, trained=False).to_bytes()]
    out += [p.read_bytes() for p in sorted((ROOT / "cards").glob("*/ticket.safetensors"))[:1]]
    return out


def random_plan(rng: random.Random, kinds: int) -> list[tuple[int, int]]:
    return [(rng.randrange(kinds), rng.randrange(2**32)) for _ in range(rng.randint(1, 3))]


# --- phase 1 ------------------------------------------------------------------------------------


def library_phase(bases, rng, deadline, report) -> None:
    from test_fuzz import MUTATIONS, check_mutant, memory_bound, mutate

    while time.monotonic() < deadline:
        data = mutate(rng.choice(bases), random_plan(rng, len(MUTATIONS)))
        peak, foreign = check_mutant(data)
        report["mutants"] += 1
        report["peak_traced"] = max(report["peak_traced"], peak)
        if peak >= memory_bound(data):
            report["over_memory"] += 1
        for e in foreign:
            report["foreign"][f"{type(e).__name__}: {str(e)[:150]}"] += 1


# --- phase 2 ------------------------------------------------------------------------------------


def cli_worker(folder: str) -> None:
    """Run the CLI in this process on every mutant in ``folder``; one JSON line per run."""
    from ticketzoo.cli.main import main

    home = Path(folder) / "home"
    os.environ["TICKETZOO_HOME"] = str(home)
    for path in sorted(Path(folder).glob("m*.safetensors")):
        command = COMMANDS[int(path.stem[1:]) % len(COMMANDS)]
        args = {"export": ["export", str(path), "--out", str(path.with_suffix(".dense")), "--force"],
                "list": ["list"]}.get(command, [command, str(path)])
        if command == "list":
            main_args = ["push", str(path)]  # push it, then list the registry that holds it
            _run(main, main_args)
        code, err = _run(main, args)
        print(json.dumps({"args": args[:1], "code": code, "err": err[-2000:]}), flush=True)


def _run(main, args) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - the boundary must not let anything through
            import traceback

            traceback.print_exc()
            code = 99
    return code, err.getvalue()


def crashed(code: int, err: str) -> bool:
    lines = err.strip().splitlines()
    return (code not in (0, 1, 2) or "Traceback" in err or "error: unexpected" in err
            or (code == 1 and len([ln for ln in lines if not ln.startswith("warning:")]) != 1))


def cli_phase(bases, rng, deadline, work: Path, report, python: str) -> None:
    from test_fuzz import MUTATIONS, mutate

    batch = 0
    while time.monotonic() < deadline:
        folder = work / f"cli{batch}"
        folder.mkdir()
        for i in range(40):
            (folder / f"m{i}.safetensors").write_bytes(mutate(rng.choice(bases), random_plan(rng, len(MUTATIONS))))
        left = max(5.0, deadline - time.monotonic() + 30)
        try:
            p = subprocess.run([python, __file__, "--worker-cli", str(folder)], capture_output=True, text=True,
                               timeout=left, env={**os.environ, "TICKETZOO_HOME": str(folder / "home")})
        except subprocess.TimeoutExpired:
            report["cli_hangs"] += 1
            break
        for line in p.stdout.splitlines():
            if not line.startswith("{"):
                continue
            run = json.loads(line)
            report["cli_runs"] += 1
            if crashed(run["code"], run["err"]):
                report["tracebacks"][f"{run['args'][0]}: {run['err'].strip()[-200:]}"] += 1
        if p.returncode != 0:
            report["tracebacks"][f"worker exit {p.returncode}: {p.stderr.strip()[-300:]}"] += 1
        # and a real process, the way a user runs it
        path = folder / "m0.safetensors"
        command = rng.choice(["verify", "info"])
        q = subprocess.run([python, "-m", "ticketzoo", command, str(path)], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "TICKETZOO_HOME": str(folder / "home")})
        report["cli_runs"] += 1
        report["cli_processes"] += 1
        if crashed(q.returncode, q.stderr):
            report["tracebacks"][f"{command} (process): {q.stderr.strip()[-200:]}"] += 1
        batch += 1


# --- phases 3 and 4 -----------------------------------------------------------------------------


def inspect_registry(root: Path) -> tuple[int, list[str]]:
    """(visible partial tickets, leftover temp files) of a registry folder."""
    from test_reliability_kill import LEFTOVER

    from ticketzoo.errors import TicketzooError
    from ticketzoo.registry.local import LocalRegistry

    reg, partial = LocalRegistry(root), 0
    for name in reg.names():
        for rev in [None, *reg.revisions(name)]:
            try:
                reg.pull(name, rev)
            except TicketzooError:
                partial += 1
    leftovers = [str(p) for p in root.rglob("*") if LEFTOVER.search(p.name)] if root.exists() else []
    return partial, leftovers


def fork_kill_phase(rng, deadline, work: Path, report) -> None:
    from conftest import tiny_ticket
    from test_reliability_kill import run_killed_at

    from ticketzoo.registry import api
    from ticketzoo.registry.local import LocalRegistry

    home = work / "fork-home"
    remote = work / "fork-remote"
    os.environ["TICKETZOO_HOME"] = str(home)
    LocalRegistry(remote).publish(tiny_ticket(name="fk-remote"))
    sources = []
    for i in range(3):
        sources.append(work / f"fk{i}.safetensors")
        tiny_ticket(name=f"fk-{i}", seed=i).save(sources[-1])
    i = 0
    while time.monotonic() < deadline:
        if rng.random() < 0.5:
            src = rng.choice(sources)
            action, kind = (lambda s=src: api.push(str(s))), "push"
        else:
            action, kind = (lambda: api.pull("fk-remote", f"file://{remote}")), "pull"
        ended = run_killed_at(rng.randint(1, 40), action)
        report["fork_kills"] += ended == -signal.SIGKILL
        partial, _ = inspect_registry(home)
        report["partial"] += partial
        i += 1
        if i % 10 == 0:  # a successful writer must leave nothing behind
            api.push(str(sources[0]))
            report["leftovers"] += len(inspect_registry(home)[1])


def process_kill_phase(rng, deadline, work: Path, report, python: str) -> None:
    from conftest import tiny_ticket

    from ticketzoo.registry.local import LocalRegistry

    home, remote = work / "kill-home", work / "kill-remote"
    LocalRegistry(remote).publish(tiny_ticket(name="kl-remote"))
    src = work / "kl.safetensors"
    tiny_ticket(name="kl-push").save(src)
    env = {**os.environ, "TICKETZOO_HOME": str(home)}
    cmds = {"push": [python, "-m", "ticketzoo", "push", str(src)],
            "pull": [python, "-m", "ticketzoo", "pull", "kl-remote", "--registry", f"file://{remote}"]}
    start = time.monotonic()  # how long an uninterrupted run takes here, now (pull: about the same)
    subprocess.run(cmds["push"], env=env, capture_output=True, timeout=300, check=True)
    took = time.monotonic() - start
    for p in sorted(home.rglob("*"), reverse=True):  # start from an empty registry
        p.rmdir() if p.is_dir() else p.unlink()
    while time.monotonic() < deadline:
        kind = rng.choice(list(cmds))
        # half at any time, half in the last third, where the files are written
        at = took * (rng.uniform(0, 1.1) if rng.random() < 0.5 else rng.uniform(0.66, 1.1))
        p = subprocess.Popen(cmds[kind], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.wait(timeout=at)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            report["process_kills"] += 1
        partial, _ = inspect_registry(home)
        report["partial"] += partial
    subprocess.run(cmds["push"], env=env, capture_output=True, timeout=300)
    report["leftovers"] += len(inspect_registry(home)[1])


# --- main ---------------------------------------------------------------------------------------


# --- racing pairs ---------------------------------------------------------------------------------


def race_worker(args: list[str]) -> None:
    """Run ``ticketzoo ARGS`` here; print one JSON line: code, stdout, stderr, and whether the
    path a successful pull printed existed right when it was printed."""
    from ticketzoo.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    printed = out.getvalue().strip()
    exists = Path(printed).is_file() if args[0] == "pull" and code == 0 else None
    print(json.dumps({"code": code, "out": printed[-500:], "err": err.getvalue()[-2000:], "exists": exists}))


@contextlib.contextmanager
def _held(home: Path):
    """The registry lock held exclusively (raw ``flock``: what every ticketzoo writer takes)."""
    import fcntl

    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def race_phase(pairs: int, rng, work: Path, report, python: str, kinds: list[str]) -> None:
    from conftest import tiny_ticket

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite\'s synthetic images
    from synthetic import make_image_folder
    from ticketzoo.registry.local import LocalRegistry

    data = make_image_folder(work / "race-data", kind="textures", classes=2, per_class=6, size=16)
    src = work / "race-push.safetensors"
    tiny_ticket(name="pushed", seed=7).save(src)
    worker = [python, str(Path(__file__).resolve()), "--worker-race"]
    readers = {"pull": lambda old: ["pull", f"zz@{old}"], "verify": lambda old: ["verify", f"zz@{old}"],
               "push": lambda old: ["push", str(src)],
               "finetune": lambda old: ["finetune", f"zz@{old}", "--data", str(data), "--epochs", "1",
                                        "--device", "cpu", "--out", str(work / "race-ft"), "--force"]}
    removers = {"rm": lambda old: ["rm", f"zz@{old}"], "gc": lambda old: ["gc", "--old-revisions"]}
    for i in range(pairs):
        home = work / f"race-{i}"
        reg = LocalRegistry(home)
        old = reg.publish(tiny_ticket(name="zz", seed=0)).revision
        reg.publish(tiny_ticket(name="zz", seed=1))
        reader = kinds[i % len(kinds)]
        remover = "gc" if (i // 5) % 2 else "rm"
        env = {**os.environ, "TICKETZOO_HOME": str(home)}
        cmds = [readers[reader](old), removers[remover](old)]
        rng.shuffle(cmds)
        held = i % 2 == 0
        with contextlib.ExitStack() as stack:
            if held:  # both wait on the lock, then race for it
                stack.enter_context(_held(home))
            procs = []
            for cmd in cmds:
                procs.append((cmd, subprocess.Popen([*worker, *cmd], env=env, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True)))
                if not held:
                    time.sleep(rng.uniform(0, 1.5))
            if held:
                time.sleep(4.0)  # let both start and block (a start-up is a few seconds here)
        results = {}
        for cmd, proc in procs:
            out, err = proc.communicate(timeout=600)
            try:
                results[cmd[0]] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                results[cmd[0]] = {"code": 99, "out": "", "err": err[-2000:], "exists": None}
        report["race_pairs"] += 1
        report[f"race {reader} vs {remover}"] += 1
        for name, r in results.items():
            if crashed(r["code"], r["err"]):
                report["tracebacks"][f"race {name}: {r['err'].strip()[-200:]}"] += 1
            report["race_exit0"] += r["code"] == 0
        pulled = results.get("pull")
        lost = bool(pulled and pulled["code"] == 0 and (
            pulled["exists"] is False  # printed a path that did not exist
            or (remover == "gc" and not Path(pulled["out"]).is_file())))  # gc removed the revision pulled last
        report["lost_paths"] += lost
        partial, _ = inspect_registry(home)
        report["partial"] += partial
        shutil.rmtree(home, ignore_errors=True)
        said = {k: (v["err"].strip().splitlines() or [""])[-1][:120] for k, v in results.items() if v["code"]}
        print(f"[race {i + 1}/{pairs}] {reader} vs {remover} ({'held' if held else 'offset'}): "
              + ", ".join(f"{k} {v['code']}" for k, v in results.items())
              + "".join(f"; {k}: {m}" for k, m in said.items()) + ("; LOST PATH" if lost else ""),
              file=sys.stderr, flush=True)


# --- caches and card text (issue 31) ---------------------------------------------------------

CONTROLS = ("\x1b[2J", "\x1b[1A\x1b[2K", "\n", "\r", "\x07", "\x9b31m", "\t", "ok")
RAW = ("\x1b", "\x9b", "\x07")  # what must never reach a terminal from card text


def _run_both(main, args) -> tuple[int, str, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code, err = _run(main, args)
    return code, out.getvalue(), err


def text_case(rng, work: Path, index: int, report) -> None:
    """A ticket whose description, dataset and class names carry control characters, through
    info/verify/push/list/predict in-process: no traceback, and no raw ESC/CSI/BEL printed."""
    import dataclasses

    from conftest import colour_folder, tiny_ticket
    from ticketzoo.cli.main import main

    def hostile() -> str:
        return "".join(rng.choice(CONTROLS) for _ in range(rng.randint(1, 5)))

    t = tiny_ticket("conv2", 0.7, name=f"fz-text-{index}", trained=True)
    source = dataclasses.replace(t.card.source, dataset=hostile(),
                                 classes=tuple(f"c{i}{hostile()}" for i in range(len(t.card.source.classes))))
    path = work / f"text{index}.safetensors"
    t.with_card(description=hostile(), source=source).save(path)
    images = work / "text-images"
    if not images.exists():
        colour_folder(images, per_class=1)
    for args in (["info", str(path)], ["verify", str(path)], ["push", str(path)], ["list"],
                 ["predict", str(path), "--data", str(images)]):
        code, out, err = _run_both(main, args)
        report["text_runs"] += 1
        if crashed(code, err):
            report["tracebacks"][f"{args[0]}: {err.strip().splitlines()[-1][:150] if err.strip() else code}"] += 1
        if any(c in out + err for c in RAW):
            report["raw_control"] += 1


def cache_case(rng, work: Path, pristine: Path, report, python: str) -> None:
    """The sparse runtime's build and kernel-choice caches damaged at random, then a real
    `predict` process: it must end 0/1/2 (never SIGBUS, 135) without a traceback."""
    cache = work / "sparse-cache"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(pristine, cache)
    library = next(cache.glob("build-*/*.so"))
    choices = next(cache.glob("choices-*.json"), None)
    kind = rng.choice(["truncate", "empty", "garbage-so", "json-types", "json-garbage", "read-only"])
    if kind == "truncate":
        data = library.read_bytes()
        library.write_bytes(data[: rng.randrange(1, len(data))])
    elif kind == "empty":
        library.write_bytes(b"")
    elif kind == "garbage-so":
        library.write_bytes(rng.randbytes(rng.randint(1, 4096)))
    elif kind == "json-types" and choices is not None:
        table = json.loads(choices.read_text())
        for key in list(table)[: rng.randint(1, len(table))]:
            table[key] = rng.choice([7, None, [], {"kernel": 3}, {"ms": None}, {"kernel": "sparse", "ms": {"x": 1}}])
        choices.write_text(json.dumps(table))
    elif kind == "json-garbage" and choices is not None:
        choices.write_bytes(rng.randbytes(rng.randint(0, 256)))
    elif kind == "read-only":
        for folder in (cache, *cache.glob("build-*")):
            folder.chmod(0o555)
    env = {**os.environ, "TICKETZOO_SPARSE_CACHE": str(cache), "CXX": "/no/such/compiler"}  # no rebuild: fall back
    proc = subprocess.run([python, "-m", "ticketzoo", "predict", str(work / "cache-ticket.safetensors"), "--data",
                           str(work / "text-images")], env=env, capture_output=True, text=True, timeout=300)
    for folder in (cache, *cache.glob("build-*")):
        folder.chmod(0o755)
    report["cache_runs"] += 1
    report[f"cache {kind}"] += 1
    if proc.returncode not in (0, 1, 2) or "Traceback" in proc.stderr or "error: unexpected" in proc.stderr:
        report["tracebacks"][f"predict after {kind}: exit {proc.returncode}"] += 1


def caches_and_text_phase(cases: int, rng, work: Path, report, python: str) -> None:
    from conftest import colour_folder, tiny_ticket

    for i in range(cases):
        text_case(rng, work, i, report)
    # one real build of the kernels, kept pristine; then each case damages a copy
    pristine = work / "pristine-cache"
    tiny_ticket("conv2", 0.7, name="fz-cache", trained=True).save(work / "cache-ticket.safetensors")
    if not (work / "text-images").exists():
        colour_folder(work / "text-images", per_class=1)
    env = {**os.environ, "TICKETZOO_SPARSE_CACHE": str(pristine)}
    built = subprocess.run([python, "-m", "ticketzoo", "predict", str(work / "cache-ticket.safetensors"), "--data",
                            str(work / "text-images")], env=env, capture_output=True, text=True, timeout=900)
    if built.returncode != 0 or not list(pristine.glob("build-*/*.so")):
        print(f"no kernel build to damage (exit {built.returncode}): cache cases skipped", file=sys.stderr)
        return
    for _ in range(cases):
        cache_case(rng, work, pristine, report, python)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="total time budget (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp folder)")
    parser.add_argument("--races", type=int, default=0, help="run this many racing CLI pairs instead")
    parser.add_argument("--race-readers", default="pull,pull,verify,push,finetune",
                        help="readers the racing pairs cycle through (default: %(default)s)")
    parser.add_argument("--caches-and-text", type=int, default=0, metavar="N",
                        help="run N hostile card-text cases and N damaged sparse-cache cases instead")
    parser.add_argument("--worker-cli", help=argparse.SUPPRESS)
    parser.add_argument("--worker-race", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_cli:
        cli_worker(args.worker_cli)
        return 0
    if args.worker_race:
        race_worker(args.worker_race)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.pop("TICKETZOO_DEBUG", None)
    rng = random.Random(args.seed)
    python = sys.executable
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tz-fuzz-")))
        work.mkdir(parents=True, exist_ok=True)
        os.environ["TICKETZOO_HOME"] = str(work / "home")
        os.environ.pop("TICKETZOO_CATALOG", None)
        report = collections.Counter()
        report["foreign"], report["tracebacks"] = collections.Counter(), collections.Counter()
        start = time.monotonic()
        if args.caches_and_text:
            caches_and_text_phase(args.caches_and_text, rng, work, report, python)
            tracebacks = report.pop("tracebacks")
            report.pop("foreign")
            kinds = ", ".join(f"{k[6:]} {report[k]}" for k in sorted(report) if k.startswith("cache "))
            print(f"caches and text: {time.monotonic() - start:.0f} s, seed {args.seed}")
            print(f"card text: {report['text_runs']} CLI runs; raw control characters printed: {report['raw_control']}")
            print(f"damaged caches: {report['cache_runs']} predict processes ({kinds})")
            print(f"tracebacks or bad exits: {sum(tracebacks.values())}")
            for msg, n in tracebacks.most_common(10):
                print(f"  {n} x {msg}")
            return 1 if tracebacks or report["raw_control"] else 0
        if args.races:
            race_phase(args.races, rng, work, report, python, args.race_readers.split(","))
            tracebacks = report.pop("tracebacks")
            report.pop("foreign")
            print(f"races: {report['race_pairs']} pairs in {time.monotonic() - start:.0f} s, seed {args.seed}")
            for key in sorted(k for k in report if k.startswith("race ")):
                print(f"  {key}: {report[key]}")
            print(f"commands exiting 0: {report['race_exit0']}; exit 0 with a path that does not exist: "
                  f"{report['lost_paths']}; tracebacks: {sum(tracebacks.values())}; partial tickets: "
                  f"{report['partial']}")
            for msg, n in tracebacks.most_common(10):
                print(f"  {n} x {msg}")
            return 1 if report["lost_paths"] or tracebacks or report["partial"] else 0
        bases = base_tickets()
        import_rss = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # torch alone is most of it
        share = {"library": 0.45, "cli": 0.20, "fork": 0.15, "process": 0.20}
        t = start
        for phase, fn in (("library", lambda d: library_phase(bases, rng, d, report)),
                          ("cli", lambda d: cli_phase(bases, rng, d, work, report, python)),
                          ("fork", lambda d: fork_kill_phase(rng, d, work, report)),
                          ("process", lambda d: process_kill_phase(rng, d, work, report, python))):
            t += share[phase] * args.seconds
            fn(max(t, time.monotonic() + 1))
            print(f"[{time.monotonic() - start:6.0f} s] {phase} phase done", file=sys.stderr, flush=True)
        self_rss = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        child_rss = _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    foreign, tracebacks = report.pop("foreign"), report.pop("tracebacks")
    print(f"campaign: {time.monotonic() - start:.0f} s, seed {args.seed}")
    print(f"mutants: {report['mutants']} in-process, {report['cli_runs']} CLI runs on mutants "
          f"({report['cli_processes']} as separate processes)")
    print(f"foreign exceptions: {sum(foreign.values())} ({len(foreign)} distinct)")
    for msg, n in foreign.most_common(10):
        print(f"  {n} x {msg}")
    print(f"tracebacks: {sum(tracebacks.values())} ({len(tracebacks)} distinct); CLI hangs: {report['cli_hangs']}")
    for msg, n in tracebacks.most_common(10):
        print(f"  {n} x {msg}")
    print(f"peak RSS: campaign process {self_rss:.0f} MB ({import_rss:.0f} MB after importing torch and "
          f"building the base tickets), largest child {child_rss:.0f} MB; peak traced "
          f"allocation of one mutant {report['peak_traced'] / 2**20:.1f} MB; over the memory bound: "
          f"{report['over_memory']}")
    print(f"kills: {report['fork_kills']} at random filesystem calls, {report['process_kills']} kill -9 of CLI "
          f"processes at random times")
    print(f"visible partial tickets: {report['partial']}; leftovers after the next run: {report['leftovers']}")
    bad = sum(foreign.values()) + sum(tracebacks.values()) + report["partial"] + report["leftovers"]
    return 1 if bad or report["over_memory"] or report["cli_hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
