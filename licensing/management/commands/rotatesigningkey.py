from django.core.management.base import BaseCommand
from django.utils import timezone
from django.utils.translation import gettext as _

from licensing.tokens import signing_key_rotate


class Command(BaseCommand):
    help = (
        "Add a new entitlement signing key (R14). It is published at once and signs once the "
        "JWKS's cache lifetime (ENTITLEMENT_JWKS_MAX_AGE) has passed, so gateways holding a "
        "cached JWKS know it first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="Sign with the new key at once.")
        parser.add_argument(
            "--retire-old",
            action="store_true",
            help=(
                "Unpublish every previous key (a compromised key; implies --now): their "
                "tokens stop verifying wherever the JWKS is fetched again."
            ),
        )

    def handle(self, *args, now, retire_old, **options):
        key = signing_key_rotate(now=now, retire_old=retire_old, actor="command:rotatesigningkey")
        self.stdout.write(
            _("New signing key %(kid)s, published now, signing from %(from)s.")
            % {"kid": key.kid, "from": timezone.localtime(key.signs_from).isoformat()}
        )
