"""Group commit: calls that arrive while a batch is being written wait for the next batch, written in one go.

Alone, a caller waits for nothing more than its own transaction. Under a burst (every client of a restarted node
resuming at once) one transaction serves hundreds of callers, so the cost of a transaction (its round trips, the
ORM's per-statement work, a commit and its fsync) is paid once per batch rather than once per caller.

A batch runs in a task of its own: a caller that gives up (its socket closed, its request cancelled) leaves the
transaction to finish, never cut short in the middle.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    """``run`` writes a batch and returns, for each item in order, its result or the exception its caller gets."""

    def __init__(self, run: Callable[[list[In]], Awaitable[Sequence[Out | Exception]]], max_batch: int) -> None:
        self._run = run
        self._max_batch = max_batch
        self._waiting: deque[tuple[In, asyncio.Future[Out]]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches())
        return await future

    async def _write_batches(self) -> None:
        batch: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while self._waiting:
                count = min(len(self._waiting), self._max_batch)
                batch = [self._waiting.popleft() for _ in range(count)]
                await self._write(batch)
        finally:
            self._writer = None
            for _, future in [*batch, *self._waiting]:
                future.cancel()  # only if the writer itself was cancelled (the loop is closing): nobody waits forever
            self._waiting.clear()

    async def _write(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            outcomes: Sequence[Out | Exception] = await self._run([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} returned {len(outcomes)} outcomes")
        except Exception as failure:  # the whole batch failed (the database is unavailable): every caller hears it
            outcomes = [failure] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller gave up
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
