"""Background loops stop between two steps: a step under way is finished, not cancelled in its transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from teleconsult.background import BackgroundLoops, settle
from teleconsult.store import Database


async def test_a_step_under_way_finishes_before_the_loop_stops(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/chores.db")
    await database.upgrade()
    chores = BackgroundLoops()
    in_step = asyncio.Event()
    steps_done = 0

    async def loop() -> None:
        nonlocal steps_done
        while not chores.stopping.is_set():
            async with database.transaction() as tx:
                in_step.set()
                await asyncio.sleep(0.2)  # stop arrives while the transaction is open
                await tx.execute(text("SELECT 1"))
            steps_done += 1
            await chores.rest(60)

    chores.start("loop", loop())
    await in_step.wait()
    await chores.stop(within_s=5)
    assert steps_done == 1  # the open transaction committed; the 60 s rest was cut short by the stop
    await database.close()


async def test_a_task_that_outlives_the_bound_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    quick = asyncio.create_task(asyncio.sleep(0))
    slow = asyncio.create_task(stuck())
    await settle([quick, slow], within_s=0.1)
    assert quick.done() and not quick.cancelled()
    assert slow.cancelled() and cancelled.is_set()


async def test_rest_returns_when_woken() -> None:
    chores = BackgroundLoops()
    wake = asyncio.Event()
    resting = asyncio.create_task(chores.rest(60, wake=wake))
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(resting, timeout=5)
    assert resting.done() and not chores.stopping.is_set()
