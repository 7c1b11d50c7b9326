from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reservemail import api, rq_dashboard
from reservemail.api_urls import api_urlpatterns
from reservemail.login_forms import LoginForm
from reservemail.metrics import metrics

urlpatterns = [
    path("api/", include(api_urlpatterns())),
    path("admin/django-rq/", include((rq_dashboard.urlpatterns(), "django_rq"))),
    path("admin/", admin.site.urls),
    # Sign in and out, and change a known password. Password reset is not mounted: nothing links to it, and it
    # would mail reset links to anyone who names an address (README, "Signing in").
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("metrics", metrics, name="metrics"),
    path("notifications/", include("notifications.urls")),
    path("settings/", include("preferences.urls")),
    path("series/", include("series.urls")),
    path("u/", include("subscriptions.urls")),
    path("", include("tasks.urls")),
]

# Under /api/ every error is JSON, also those Django answers itself with DEBUG off.
handler400 = api.bad_request
handler403 = api.permission_denied
handler404 = api.page_not_found
handler500 = api.server_error
