"""Two tenants on the shared test server, their objects made on first use (see tenants.py)."""

from __future__ import annotations

import pytest
from route_table import app_routes
from tenants import Tenant


@pytest.fixture(scope="session")
def routes():
    return app_routes()


@pytest.fixture(scope="session")
def tenant_a(server) -> Tenant:
    return Tenant.create(server, "tenant-a")


@pytest.fixture(scope="session")
def tenant_b(server) -> Tenant:
    return Tenant.create(server, "tenant-b")



def pytest_terminal_summary(terminalreporter):
    from route_table import COUNTS

    if COUNTS:
        terminalreporter.write_sep("-", "security checks tried")
        for name, n in sorted(COUNTS.items()):
            terminalreporter.write_line(f"{name}: {n}")
