from django.urls import path

from tasks import views

app_name = "tasks"
urlpatterns = [
    path("", views.mail_form, name="mail"),
    path("tasks/", views.history, name="history"),
    path("tasks/<int:task_id>/", views.detail, name="detail"),
    path("tasks/<int:task_id>/edit/", views.edit, name="edit"),
    path("tasks/<int:task_id>/cancel/", views.cancel, name="cancel"),
    path("tasks/<int:task_id>/reschedule/", views.reschedule, name="reschedule"),
    path("tasks/<int:task_id>/deliveries/<int:delivery_id>/", views.delivery_copy, name="delivery_copy"),
    path("healthz", views.healthz, name="healthz"),
]
