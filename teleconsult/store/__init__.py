"""Persistence adapter: the only home of SQLAlchemy. Services call these functions inside ``Database.transaction``."""

from teleconsult.store.database import Database, Tx

__all__ = ["Database", "Tx"]
