from django.contrib import admin

from tasks.models import Delivery, Task


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    readonly_fields = ["address", "status", "message_id", "error", "sent_at"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "description", "owner", "template", "status", "reserved_at", "progress", "failed"]
    list_filter = ["status", "queue", "failed"]
    search_fields = ["description", "owner__username"]
    readonly_fields = ["status", "progress", "failed", "attempts", "log", "reserved_at", "started_at", "ended_at"]
    inlines = [DeliveryInline]
