"""The project's admin site: stock Django's, signing in through the form that checks a name's length first.

Installed as the default site by reservemail.apps.AdminConfig, so ``admin.site`` is this one from
the moment the apps load, whatever URLconf is in use.
"""

from __future__ import annotations

from django.contrib import admin

from reservemail.login_forms import AdminLoginForm


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm
