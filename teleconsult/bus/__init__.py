"""The live message bus between nodes: an interface and its backends, chosen once in ``app.py``."""

from teleconsult.bus.base import Bus, Handler, Leases
from teleconsult.bus.local import LocalBus

__all__ = ["Bus", "Handler", "Leases", "LocalBus"]
