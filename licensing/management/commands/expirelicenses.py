from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from licensing.expiry import EXPIRY_BATCH_SIZE, licenses_expire_due


class Command(BaseCommand):
    help = (
        "Run the nightly expiry job once (R5): record licenses past their expiry instant as "
        "expired, audit them and send the expiry-date notices. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=EXPIRY_BATCH_SIZE,
            help="Licenses per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--send-now",
            action="store_true",
            help="Send the notices from this process instead of queueing them for the worker.",
        )

    def handle(self, *args, batch_size, send_now, **options):
        if batch_size < 1:
            raise CommandError(_("--batch-size must be a positive number."))
        run = licenses_expire_due(
            batch_size=batch_size, actor="command:expirelicenses", send_inline=send_now
        )
        self.stdout.write(
            _(
                "Expired %(expired)d licenses; %(notices)d expiry-date notices claimed, "
                "%(requeued)d unsent reminders queued again."
            )
            % run.as_dict()
        )
