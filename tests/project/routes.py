"""The project's URL routes, walked from the root URLconf: what the request sweeps call."""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver


def all_routes(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    """Every route's pattern text, its includes' prefixes joined (``tasks/<int:task_id>/cancel/``)."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from all_routes(entry, route)
        elif isinstance(entry, URLPattern):
            yield route
