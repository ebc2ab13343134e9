"""Stopping background tasks: cancel, wait until they are done, and let our own cancellation through."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel tasks (None is skipped) and wait until they are done, without swallowing our own cancellation.

    Cancels again while waiting: on Python 3.11 `wait_for` can lose a cancellation that arrives
    just as the awaited future completes, leaving a task running after one `cancel()`.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)


__all__ = ["cancel_and_wait"]
