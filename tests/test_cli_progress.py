"""Tests of ticketzoo.cli.progress: the library's log records and progress, as the CLI shows them."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from ticketzoo.cli.progress import ConsoleHandler, RichProgress, library_output
from ticketzoo.progress import NoProgress, progress_log, style


def _console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, highlight=False, markup=False, force_terminal=terminal), out


def _log_three() -> None:
    logging.getLogger("ticketzoo.find.imp").info("round 1/2 (imp): sparsity 20.00%")
    progress_log.info("run 1/2: init rewind, seed 0", extra=style("bold"))
    logging.getLogger("ticketzoo.finetune.report").warning("no validation images")


def test_records_are_shown_and_quiet_keeps_warnings():
    console, out = _console()
    with library_output(False, console=console) as progress:
        assert isinstance(progress, RichProgress)
        _log_three()
    assert out.getvalue().splitlines() == ["round 1/2 (imp): sparsity 20.00%", "run 1/2: init rewind, seed 0",
                                           "no validation images"]
    console, out = _console()
    with library_output(True, console=console) as progress:
        assert isinstance(progress, NoProgress)
        _log_three()
    assert out.getvalue().splitlines() == ["no validation images"]
    console, out = _console()
    with library_output(True, hide="ticketzoo.progress", console=console):  # finetune's --quiet
        _log_three()
    assert out.getvalue().splitlines() == ["round 1/2 (imp): sparsity 20.00%", "no validation images"]
    assert not any(isinstance(h, ConsoleHandler) for h in logging.getLogger("ticketzoo").handlers)  # removed after


def test_styles_reach_a_terminal():
    console, out = _console(terminal=True)
    with library_output(False, console=console):
        _log_three()
    text = out.getvalue()
    assert "\x1b[1mrun 1/2" in text and "\x1b[33mno validation images" in text


def test_a_live_bar_goes_when_its_tasks_end():
    console, out = _console(terminal=True)
    p = RichProgress(console)
    p.start("sweep", "sweep", total=2, note="ETA ?")
    p.start("job", "  job", note="starting")
    p.advance("job", 1, total=3, note="epoch 1/3")
    p.end("job")
    assert p._bar is not None  # the sweep still runs
    p.advance("sweep", 1, note="ETA 1s")
    p.end("sweep", "sweep done")
    assert p._bar is None and out.getvalue().rstrip().endswith("sweep done")


def test_without_a_terminal_only_tasks_with_a_unit_print_lines():
    console, out = _console()
    p = RichProgress(console, log_every_s=0)
    p.start("sweep", "sweep", total=4)
    p.advance("sweep", 1)
    p.start("epoch", "epoch 2/5", total=10, completed=3, unit="batches")
    p.advance("epoch", 5, note="loss 0.5000")
    p.end("epoch", "epoch 2/5  lr 0.1")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1] == "epoch 2/5  lr 0.1"
    assert lines[0].startswith("epoch 2/5: 5/10 batches, ") and "it/s, epoch ETA " in lines[0]
    assert lines[0].endswith(", loss 0.5000")
