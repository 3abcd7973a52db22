"""Imports every module that defines tables, so Base.metadata (Alembic, tests) sees them all."""

from headwater.store import models  # noqa: F401
from headwater.store import job_models  # noqa: F401
from headwater.store import flow_models  # noqa: F401
from headwater.store import knowledge_models  # noqa: F401
from headwater.store import thread_models  # noqa: F401
from headwater.store import mcp_models  # noqa: F401
from headwater.store import studio_models  # noqa: F401
