"""confirmpayment ORDER_ID --reference REF (CONTRACT.md): the admin action's service."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from billing import services
from billing.models import Order
from console.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Confirm a pending order's bank transfer: records the payment and issues (new) or "
        "renews (renewal) its licenses. Prints the license ids, one per line."
    )

    def add_arguments(self, parser):
        parser.add_argument("order_id", type=int, help="The order's id.")
        parser.add_argument(
            "--reference", required=True, help="The bank transfer's reference (required)."
        )

    def handle(self, *args, order_id: int, reference: str, **options):
        try:
            result = services.order_confirm_payment(
                order=order_id, reference=reference, actor="command:confirmpayment"
            )
        except ServiceError as exc:
            raise CommandError(str(exc.detail)) from exc
        order = result.order
        if order.kind == Order.Kind.NEW:
            summary = _("Order #%(id)s paid (reference %(ref)s, %(amount)s %(currency)s).")
            summary += " " + _("Licenses issued: %(n)d.")
        else:
            summary = _("Order #%(id)s paid (reference %(ref)s, %(amount)s %(currency)s).")
            summary += " " + _("Licenses renewed: %(n)d.")
        self.stdout.write(
            summary
            % {
                "id": order.pk,
                "ref": result.payment.reference,
                "amount": result.payment.amount,
                "currency": result.payment.currency,
                "n": len(result.license_ids),
            }
        )
        self.stdout.write("\n".join(str(i) for i in result.license_ids))
