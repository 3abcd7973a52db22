"""The run behaviour suite runs once per deployment mode: `cluster` gives processes A and B (and workers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster import REDIS_URL_BASE, Cluster, flush_redis, redis_unavailable_reason, scaleout_env
from support.server import ServerProcess, create_pg_database, drop_pg_database, pg_url

# Redis database of this suite's scale-out cluster (other suites use others); flushed at start.
CLUSTER_REDIS_DB = 7


@pytest.fixture(scope="module", params=["embedded", "scaleout"])
def cluster(request, tmp_path_factory, pg_skip_reason) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    if request.param == "embedded":
        server = ServerProcess(data_dir=data_dir, extra_env={"HEADWATER_RUN_LEASE_SECONDS": "3"}).start()
        cluster = Cluster("embedded", server, server)
        yield cluster
        cluster.stop()
        return
    if pg_skip_reason:
        pytest.skip(pg_skip_reason)
    if reason := redis_unavailable_reason():
        pytest.skip(reason)
    database = create_pg_database()
    redis_url = f"{REDIS_URL_BASE}/{CLUSTER_REDIS_DB}"
    flush_redis(redis_url)
    env = scaleout_env(pg_url(database), redis_url)
    admin_key = "hw_admin_cluster_" + database
    a = ServerProcess(data_dir=data_dir, database_url=pg_url(database), admin_key=admin_key, extra_env=env).start()
    b = ServerProcess(data_dir=data_dir, database_url=pg_url(database), admin_key=admin_key, extra_env=env).start()
    cluster = Cluster("scaleout", a, b)
    cluster.start_worker()
    try:
        yield cluster
    finally:
        cluster.stop()
        drop_pg_database(database)
