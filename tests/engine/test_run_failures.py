"""RunFailure: what each kind of exception means for a run, and its stored form."""

from __future__ import annotations

import pytest

from headwater.engine.errors import NodeFailed
from headwater.engine.failures import CANCELLED, RunFailure
from headwater.errors import InvalidInput, RunFailed
from headwater.providers.base import ProviderError, ProviderTimeout


@pytest.mark.parametrize(("exc", "expected"), [
    (TimeoutError(), RunFailure("timeout", "node did not finish within 3s", 504, "n")),
    (NodeFailed("no such template variable", code="template_error", status_code=422),
     RunFailure("template_error", "no such template variable", 422, "n")),
    (ProviderError("upstream said no", status=500), RunFailure("provider_error", "upstream said no", 502, "n")),
    (ProviderTimeout("upstream too slow"), RunFailure("provider_error", "upstream too slow", 504, "n")),
    (InvalidInput("bad url"), RunFailure("invalid_input", "bad url", 422, "n")),
    (KeyError("secret detail"), RunFailure("internal_error", "internal error", 500, "n")),
])
def test_each_exception_means_one_failure(exc: BaseException, expected: RunFailure) -> None:
    assert RunFailure.of_exception(exc, timeout=3, node_id="n") == expected


def test_a_failure_round_trips_through_its_stored_form() -> None:
    failure = RunFailure("provider_error", "upstream said no", 502, "gen")
    assert RunFailure.from_data(failure.to_data()) == failure
    assert RunFailure.from_data(None) is None
    # An older record without a status answers 502, as a failed run always did.
    assert RunFailure.from_data({"code": "provider_error", "message": "m"}).status == 502


def test_the_http_error_carries_the_failure_s_status_and_run() -> None:
    error = CANCELLED.http_error("run-1")
    assert isinstance(error, RunFailed)
    assert (error.status_code, error.detail, error.run_id) == (409, "the run was cancelled", "run-1")
