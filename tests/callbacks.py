"""Reading what django_capture_on_commit_callbacks captured: the queue calls a service left for after the commit.

notifications.services also registers a callback per merge (it keeps the payload it wrote once the
write commits); tests that count the job moves of a service leave that bookkeeping out.
"""

from collections.abc import Callable
from typing import Any


def queue_calls(callbacks: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """The captured callbacks other than the notification module's."""
    return [callback for callback in callbacks if getattr(callback, "__module__", None) != "notifications.services"]
