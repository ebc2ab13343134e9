"""Fake provider servers for tests and benches (127.0.0.1, ephemeral ports, no network)."""

from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, Step

__all__ = ["FakeOpenAI", "RecordedRequest", "Step"]
