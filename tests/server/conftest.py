"""The one fixture that opens real sessions on scripted engines (see ``session_harness``)."""

from __future__ import annotations

import pytest

from tests.server.session_harness import SessionHarness, open_session


@pytest.fixture
async def make_session():
    """``await make_session(llm=..., tts=...)``; every session it opened is closed after the test."""
    opened: list[SessionHarness] = []

    async def make(**kwargs) -> SessionHarness:
        harness = await open_session(**kwargs)
        opened.append(harness)
        return harness

    yield make
    for harness in opened:
        await harness.aclose()
