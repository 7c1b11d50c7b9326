from django.contrib import admin
from django.urls import include, path

from reservemail import rq_dashboard
from reservemail.api_urls import api_urlpatterns
from reservemail.metrics import metrics

urlpatterns = [
    path("api/", include(api_urlpatterns())),
    path("admin/django-rq/", include((rq_dashboard.urlpatterns(), "django_rq"))),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics, name="metrics"),
    path("notifications/", include("notifications.urls")),
    path("settings/", include("preferences.urls")),
    path("", include("tasks.urls")),
]
