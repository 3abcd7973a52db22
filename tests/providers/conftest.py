"""Mock upstream servers, started once per module and reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.provider_mocks import MockState, ServedApp, anthropic_app, openai_app


@pytest.fixture(scope="module")
def openai_server() -> Iterator[ServedApp]:
    state = MockState()
    served = ServedApp(openai_app(state), state).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[ServedApp]:
    state = MockState()
    served = ServedApp(anthropic_app(state), state).start()
    yield served
    served.stop()


@pytest.fixture
def openai_mock(openai_server: ServedApp) -> ServedApp:
    openai_server.state.reset()
    return openai_server


@pytest.fixture
def anthropic_mock(anthropic_server: ServedApp) -> ServedApp:
    anthropic_server.state.reset()
    return anthropic_server
