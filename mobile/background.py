"""Run a blocking API call off the UI thread and hand its outcome back on the UI thread.

Kivy widgets may only be touched from the main thread, and a blocked main thread freezes
the app (Android even offers to kill it). Each call gets its own short-lived daemon thread:
the app makes one call at a time, so there is nothing to pool or queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kivy.clock import mainthread

from mobile.api import ApiError
from mobile.i18n import get_language

log = logging.getLogger(__name__)

T = TypeVar("T")


def run_in_background(
    work: Callable[[], T],
    on_success: Callable[[T], Any],
    on_error: Callable[[ApiError], Any],
) -> threading.Thread:
    """Call ``work()`` in a thread; then ``on_success(result)`` or ``on_error(ApiError)``
    on the next frame of the UI thread. A bug in ``work`` is logged and reported as an
    unexpected error, so the busy indicator always stops."""

    @mainthread
    def deliver(callback: Callable[[Any], Any], value: Any) -> None:
        callback(value)

    def runner() -> None:
        try:
            result = work()
        except ApiError as error:
            deliver(on_error, error)
        except Exception:  # noqa: BLE001 - the thread must always report back to the UI
            log.exception("background call failed")
            deliver(on_error, ApiError.unexpected(get_language()))
        else:
            deliver(on_success, result)

    thread = threading.Thread(target=runner, name="carnet-api-call", daemon=True)
    thread.start()
    return thread
