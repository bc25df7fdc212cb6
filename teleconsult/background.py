"""Background work that stops between two steps, never in the middle of a database transaction.

Cancelling a task inside a transaction leaves the driver to clean up behind it: the write is lost (a departure, a
mail's status) and aiosqlite's close, once cancelled, can wait forever for a worker thread that has already
stopped. So shutdown asks background loops to stop, waits a bounded time for the step under way, and cancels only
what outlives that bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def settle(tasks: Collection[asyncio.Task[Any]], within_s: float) -> None:
    """Let ``tasks`` finish for at most ``within_s`` seconds, then cancel those still running."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=within_s)
    if late:
        log.warning("%d task(s) still running after %.1f s: cancelled", len(late), within_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class BackgroundLoops:
    """The server's background loops (mail sender, housekeeping, heartbeat) and their orderly stop.

    Each loop has a name; ``running`` says which are alive, for the health check. A loop that ends before the
    server stops (it should not: loops survive the failure of any one step) is logged as an error at once.
    """

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(loop, name=f"chore:{name}")
        task.add_done_callback(self._ended)
        self._tasks[name] = task

    def running(self) -> dict[str, bool]:
        """Each loop's name, and whether it is still running."""
        return {name: not task.done() for name, task in self._tasks.items()}

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self.stopping.is_set():
            return
        error = None if task.cancelled() else task.exception()
        log.error("background loop %s stopped%s", task.get_name(), f": {type(error).__name__}" if error else "")

    async def rest(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Pause for ``seconds``, or until ``wake`` is set, or until the server is stopping."""
        waits = [asyncio.ensure_future(self.stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def stop(self, within_s: float) -> None:
        """Ask every loop to stop after its current step; cancel those that take longer than ``within_s``."""
        self.stopping.set()
        await settle(list(self._tasks.values()), within_s)
