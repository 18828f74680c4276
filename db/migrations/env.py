"""Alembic environment: runs on the connection handed over by ``db.engine.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from db.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line: open the URL given in the config
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///data/rlhf.db")
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
