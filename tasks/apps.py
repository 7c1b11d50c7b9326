from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _

from tasks.checks import check_sender, check_sender_for_deploy


class TasksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tasks"
    verbose_name = _("Tasks")

    def ready(self) -> None:
        checks.register(check_sender, checks.Tags.security)
        checks.register(check_sender_for_deploy, checks.Tags.security, deploy=True)
