"""``teleconsult serve --workers N``: N server processes on one port, so that one machine's cores are all used.

The parent prepares once (settings checked, migrations applied) and forks N workers; each runs the whole server
and listens with ``SO_REUSEPORT``, so the kernel spreads new connections among them. The workers share nothing
in memory: they are nodes of a cluster joined through Redis, each with its own node id, which is why N > 1
requires ``redis_url``. The parent passes SIGTERM and SIGINT on to every worker and waits for them; a worker that
dies is started again (a worker's clients resume on the others meanwhile), unless the server is stopping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

#: A worker that dies within this long of its start is not started again (it would only die again).
QUICK_DEATH_S = 5.0


def run_workers(count: int, serve: Callable[[int], int]) -> int:
    """Fork ``count`` workers, each running ``serve(index)`` (which returns its exit status); wait for them all."""
    children: dict[int, tuple[int, float]] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            status = 1
            try:
                status = serve(index)
            finally:
                os._exit(status)
        children[pid] = (index, time.monotonic())

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for index in range(count):
        spawn(index)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index, started = children.pop(pid, (-1, 0.0))
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, abs(code))
        if index >= 0 and not stopping:
            if time.monotonic() - started < QUICK_DEATH_S:
                log.error("worker %d exited at once (status %d): not started again", index, code)
            else:
                log.warning("worker %d exited (status %d): starting it again", index, code)
                spawn(index)
    return 0 if stopping else worst
