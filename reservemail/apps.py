"""App configs of the project package itself."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as StockAdminConfig


class AdminConfig(StockAdminConfig):
    """django.contrib.admin with reservemail.admin_site.AdminSite as ``admin.site`` (Django's documented way)."""

    default_site = "reservemail.admin_site.AdminSite"
