"""How long work reports how far it is: the :class:`Progress` protocol, and the progress log.

The library never draws: training (:class:`ticketzoo.train.ProgressCallback`) and
``compare``'s sweep send events to a ``Progress`` they are given, and :class:`NoProgress`
(the default) drops them. The CLI renders them (a live bar on a terminal, a plain line
now and then in a log). A task is named by a ``key`` unique among the running ones
("epoch", "sweep", a job's key); it is started, advanced, and ended once.

Messages go through :mod:`logging` under ``ticketzoo.*``. The lines that report
progress rather than what a run is (a run starting, a round's sparsity) go to
:data:`progress_log`, so a caller can silence them alone. A record may carry a ``style``
(``extra={"style": "bold"}``): a hint for a renderer, which may ignore it.
"""

from __future__ import annotations

import logging
from typing import Protocol

#: Progress lines (``--quiet`` hides them); other messages use their module's logger.
progress_log = logging.getLogger("ticketzoo.progress")


class Progress(Protocol):
    """Where tasks report. ``unit`` (e.g. "batches"): a display without a live bar may
    print the task's rate and ETA now and then; tasks without one are shown live only."""

    def start(self, key: str, description: str, *, total: int | None = None, completed: int = 0,
              unit: str = "", note: str = "") -> None: ...

    def advance(self, key: str, completed: int, *, total: int | None = None,
                note: str | None = None) -> None:
        """``completed`` so far (not an increment); ``note`` None keeps the last one."""

    def end(self, key: str, summary: str | None = None) -> None:
        """The task is over; ``summary`` is a line to keep once its bar is gone."""


class NoProgress:
    """Shows nothing: what the library reports to when nobody listens."""

    def start(self, key: str, description: str, *, total: int | None = None, completed: int = 0,
              unit: str = "", note: str = "") -> None: ...
    def advance(self, key: str, completed: int, *, total: int | None = None,
                note: str | None = None) -> None: ...
    def end(self, key: str, summary: str | None = None) -> None: ...


def style(name: str | None) -> dict:
    """``extra=`` for a log call whose line a renderer may show in ``name`` ("yellow", "bold")."""
    return {"style": name} if name else {}
