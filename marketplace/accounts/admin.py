from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from marketplace.accounts.models import ApiToken, Organization, User


@admin.register(User)
class MarketUserAdmin(UserAdmin):
    list_display = ("username", "email", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff")
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Moderation", {"fields": ("ban_reason",)}))


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("members",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "last_used_at")
    list_filter = ("revoked_at",)
