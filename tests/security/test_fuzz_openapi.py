"""Property-based fuzzing of the OpenAPI document with schemathesis: no 500s, no answer the document does not describe.

A server of its own, fuzzed with a workspace admin key (so every route is
reached past auth, and the instance-admin ones answer 403 as documented). The
number of examples per operation is bounded (HEADWATER_FUZZ_EXAMPLES, default 8)
so the whole run stays within a couple of minutes on a small machine; CI can
raise it. Checks: not a server error, status code, content type and body all as
the document says.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from support.server import ServerProcess

from route_table import count, openapi

EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "8"))
# 502-504 say that something the request named (a model provider, a remote MCP server at a generated URL)
# failed or did not answer: documented, and no fault of the server's. Any other 5xx is one.
UPSTREAM_FAILURES = {502, 503, 504}


@schemathesis.check
def not_a_server_fault(ctx, response, case):
    if response.status_code >= 500 and response.status_code not in UPSTREAM_FAILURES:
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


CHECKS = [not_a_server_fault, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("fuzz"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fuzz_key(fuzzed_server) -> str:
    workspace = fuzzed_server.new_workspace("fuzz")
    workspace.create_chatbot(model="fake/echo", name="fuzz bot")
    return workspace.admin_key


# The document the server serves, built in this process from the same code (the server starts later).
schema = schemathesis.openapi.from_dict(openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_any_input_as_its_document_says(case, fuzzed_server, fuzz_key):
    count("fuzz cases run")
    case.call_and_validate(base_url=fuzzed_server.base_url, headers={"X-API-Key": fuzz_key}, checks=CHECKS,
                           timeout=30)
