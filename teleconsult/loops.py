"""The event loop ``serve`` runs on (``server.event_loop``).

uvloop (libuv's loop, through Cython) does a socket's reads and writes without going through Python's
``selector_events``; ``bench/cluster.py`` and ``bench/signaling.py`` run the server on it. The standard library's loop
stays one setting away, for a debugger or a platform uvloop does not build on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of that name (``config.EVENT_LOOPS``)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """``asyncio.run`` on the named loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
