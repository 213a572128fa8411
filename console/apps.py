from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "console"
    verbose_name = _("Console")

    def ready(self):
        from console.staff import ensure_after_migrate

        # The staff groups exist after every migrate and every flush (CONTRACT.md "Staff
        # roles"); a migration makes them too.
        post_migrate.connect(ensure_after_migrate, sender=self, dispatch_uid="staff_groups")
