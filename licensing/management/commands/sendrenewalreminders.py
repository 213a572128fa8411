from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from licensing.reminders import reminders_send_due


class Command(BaseCommand):
    help = (
        "Run the renewal reminder job once (R11): the reminders due today (30, 7, 1 days "
        "before the expiry date and on it), one email per tenant, milestone and expiry date. "
        "Safe to re-run: an email already claimed is never sent again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--send-now",
            action="store_true",
            help="Send the emails from this process instead of queueing them for the worker.",
        )

    def handle(self, *args, send_now, **options):
        run = reminders_send_due(send_inline=send_now)
        claimed = ", ".join(
            f"{milestone}d: {n}" for milestone, n in sorted(run.claimed.items(), reverse=True)
        )
        self.stdout.write(
            _("Reminders claimed: %(claimed)s; %(requeued)d unsent reminders queued again.")
            % {"claimed": claimed or "0", "requeued": run.requeued}
        )
