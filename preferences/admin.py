from django.contrib import admin

from preferences.models import UserPreference
from reservemail import admin_base


@admin.register(UserPreference)
class UserPreferenceAdmin(admin_base.ModelAdmin):
    list_display = ["user", "time_zone", "updated_at"]
    search_fields = ["user__username", "time_zone"]
    readonly_fields = ["updated_at"]
