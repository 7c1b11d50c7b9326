"""The admin's warning banner: shown to staff when the scheduler is down or sends are overdue."""

from __future__ import annotations

from typing import Any

from django import template

from tasks.health import cached_health_report

register = template.Library()


@register.inclusion_tag("admin/health_banner.html", takes_context=True)
def health_banner(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {"problems": []}
    return {"problems": cached_health_report()["problems"]}
