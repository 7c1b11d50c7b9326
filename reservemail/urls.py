from django.contrib import admin
from django.urls import include, path

from reservemail.metrics import metrics

urlpatterns = [
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics, name="metrics"),
    path("notifications/", include("notifications.urls")),
    path("", include("tasks.urls")),
]
