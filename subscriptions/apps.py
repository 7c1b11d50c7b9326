from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _

from subscriptions.checks import check_site_url


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"
    verbose_name = _("Subscriptions")

    def ready(self) -> None:
        checks.register(check_site_url, checks.Tags.security, deploy=True)
