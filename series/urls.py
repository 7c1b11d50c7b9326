from django.urls import path

from series import views

app_name = "series"
urlpatterns = [
    path("", views.series_list, name="list"),
    path("preview/", views.preview, name="preview"),
    path("<int:series_id>/", views.series_detail, name="detail"),
    path("<int:series_id>/change/", views.series_change, name="change"),
    path("<int:series_id>/<str:action>/", views.series_control, name="control"),
]
