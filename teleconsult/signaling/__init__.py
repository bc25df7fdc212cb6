"""Signaling: protocol v1's rooms on this node. The dispatcher (``service.py``), the sessions and their registry
(``sessions.py``), and which node holds which room (``ownership.py``)."""

from teleconsult.signaling.ownership import Cluster
from teleconsult.signaling.service import Seated, SignalingService
from teleconsult.signaling.sessions import Connection, Session

__all__ = ["Cluster", "Connection", "Seated", "Session", "SignalingService"]
