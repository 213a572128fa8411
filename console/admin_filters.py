"""Small admin building blocks shared by the apps' admin modules."""

from django.contrib import admin


class NullFilter(admin.SimpleListFilter):
    """A list filter on whether `field` is empty, with product words for each side.

    `options` is ((value, label, isnull), …): choosing `value` keeps the rows whose field is
    null when `isnull` is True, set otherwise. (Not `choices`: SimpleListFilter has a method
    of that name.)"""

    field = ""
    options: tuple = ()

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _isnull in self.options]

    def queryset(self, request, queryset):
        for value, _label, isnull in self.options:
            if self.value() == value:
                return queryset.filter(**{f"{self.field}__isnull": isnull})
        return queryset


class ReadOnlyAdminMixin:
    """For admins and inlines of records that change only through services (payments,
    audit events, sent reminders, totals): staff may look, never add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
