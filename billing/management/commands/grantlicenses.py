"""grantlicenses SLUG --quantity N [--years Y] (CONTRACT.md).

A grant is an offline order (channel "offline", at the tenant's contract price) paid at once
with the reference "offline-grant", through the same confirmation as a bank transfer: its
licenses start now (R3) and it shows in the tenant's orders, receipts and totals. Prints the
license ids, one per line, after a summary line on stderr so the output can be piped.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from billing import services
from console.errors import ServiceError
from console.models import Tenant


class Command(BaseCommand):
    help = "Issue N licenses to a tenant, paid now, through an offline order; prints their ids."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's slug.")
        parser.add_argument("--quantity", type=int, required=True, help="Number of licenses.")
        parser.add_argument("--years", type=int, default=1, help="Years, 1–10 (default 1).")
        parser.add_argument(
            "--reference",
            default=services.OFFLINE_GRANT_REFERENCE,
            help="The payment reference recorded (default: offline-grant).",
        )

    def handle(self, *args, slug: str, quantity: int, years: int, reference: str, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(_("No tenant with the slug “%(slug)s”.") % {"slug": slug})
        try:
            result = services.order_grant_offline(
                tenant=tenant,
                quantity=quantity,
                years=years,
                reference=reference,
                actor="command:grantlicenses",
            )
        except ServiceError as exc:
            raise CommandError(str(exc.detail)) from exc
        self.stderr.write(
            _("Offline order #%(id)s (%(total)s %(currency)s) paid: %(n)d licenses for %(tenant)s.")
            % {
                "id": result.order.pk,
                "total": result.order.total,
                "currency": result.order.currency,
                "n": len(result.license_ids),
                "tenant": tenant.slug,
            }
        )
        # One write: 100,000 ids print in a blink.
        self.stdout.write("\n".join(str(i) for i in result.license_ids))
