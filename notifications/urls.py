from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.poll, name="poll"),
    path("dismiss/", views.dismiss, name="dismiss"),
]
