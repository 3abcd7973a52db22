"""Imports every module that defines tables, so Base.metadata (Alembic, tests) sees them all."""

from headwater.store import models  # noqa: F401
