"""This process's place in a launch: rank, world size, and who reads and writes files.

One object answers what algorithms used to ask :mod:`.distributed` call by call (as
open_lth's ``Platform``), so a driver reads as "the main rank writes, then every rank goes
on" rather than as rank checks. It holds no state: every answer comes from the process
group, so it may be made before :meth:`join` and stays right after it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, TypeVar

from ticketzoo.train import distributed as dist

T = TypeVar("T")


class Platform:
    """Rank helpers over :mod:`.distributed`; every method is a plain call in one process."""

    @classmethod
    def join(cls) -> Platform:
        """The platform, with this process in the ``torchrun`` process group when launched."""
        dist.ensure()
        return cls()

    @property
    def rank(self) -> int:
        return dist.rank()

    @property
    def world_size(self) -> int:
        return dist.world_size()

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that reads and writes files and reports."""
        return dist.is_main()

    def barrier(self) -> None:
        dist.barrier()

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the main rank, its result given to every rank (errors too)."""
        return dist.from_main(fn)

    def write(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (a write) on the main rank; every rank returns once it is done, or
        raises if it failed."""
        dist.from_main(lambda: (fn(), None)[1])

    def main_first(self, when: bool = True) -> contextlib.AbstractContextManager[None]:
        """The main rank runs the block first, the others after it (a download they share)."""
        return dist.main_first(when)

    def describe(self, batch_size: int) -> dict[str, Any]:
        """The process layout a card and a run folder record (refuses an unshareable batch)."""
        return dist.describe(batch_size)


__all__ = ["Platform"]
