"""`sendpendingemails`: deliver every stored email that is due now (R13's outbox).

The worker does the same on its own (on commit, and the sweep every minute); this is for an
operator, or a machine without a worker. Safe at any time and twice at once: each email is
claimed before it is sent (console.outbox).
"""

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from console.outbox import outbound_emails_deliver


class Command(BaseCommand):
    help = _("Deliver every stored email that is due now.")

    def handle(self, *args, **options):
        run = outbound_emails_deliver()
        self.stdout.write(
            _("emails sent: %(sent)d, to retry: %(retrying)d, failed: %(failed)d") % run.as_dict()
        )
