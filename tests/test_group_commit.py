"""Group commit: callers arriving while a batch is written share the next one; each gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from teleconsult.errors import ErrorCode, TeleconsultError
from teleconsult.group_commit import GroupCommit


class Recorder:
    """A batch writer that takes a while and says which items it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def run(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(items)
        await asyncio.sleep(0.01)
        if self.fail:
            raise TeleconsultError(ErrorCode.UNAVAILABLE, "The database is unavailable.")
        return [item * 10 if item % 7 else ValueError(f"item {item}") for item in items]


async def test_a_lone_caller_gets_its_own_batch() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, max_batch=100)
    assert await commit(3) == 30
    assert recorder.batches == [[3]]


async def test_a_burst_shares_batches_and_each_caller_gets_its_outcome() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, max_batch=40)
    outcomes = await asyncio.gather(*(commit(n) for n in range(1, 101)), return_exceptions=True)
    for n, outcome in zip(range(1, 101), outcomes, strict=True):
        if n % 7:
            assert outcome == n * 10
        else:
            assert isinstance(outcome, ValueError) and str(outcome) == f"item {n}"
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(1, 101))  # each once
    assert len(recorder.batches) <= 4 and max(map(len, recorder.batches)) <= 40


async def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_runs() -> None:
    recorder = Recorder(fail=True)
    commit = GroupCommit(recorder.run, max_batch=10)
    outcomes = await asyncio.gather(*(commit(n) for n in range(1, 6)), return_exceptions=True)
    assert all(isinstance(o, TeleconsultError) and o.code is ErrorCode.UNAVAILABLE for o in outcomes)
    recorder.fail = False
    assert await commit(2) == 20


async def test_a_caller_that_gives_up_leaves_the_batch_to_finish() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, max_batch=10)
    impatient = asyncio.create_task(commit(1))
    patient = asyncio.create_task(commit(2))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert recorder.batches == [[1, 2]]  # the batch was written whole
