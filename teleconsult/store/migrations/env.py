"""Alembic environment: runs on the connection handed over by ``Database.upgrade`` (or the CLI)."""

from __future__ import annotations

from alembic import context

from teleconsult.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through Database.upgrade
    raise RuntimeError("run migrations with `teleconsult db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
