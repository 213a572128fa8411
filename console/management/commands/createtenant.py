"""`manage.py createtenant NAME --slug SLUG --owner EMAIL [--api-key]` (CONTRACT.md).

Creates an active tenant with its owner (the user is created when missing, without a
usable password). With --api-key the last line printed is a new admin API key, alone, so a
script can take it with `tail -n 1`.
"""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from console.errors import ServiceError
from console.models import ApiKey, Tenant, User, slug_validator
from console.services import api_key_create, tenant_create, user_get_or_create

ACTOR = "command:createtenant"


def _errors_text(exc: ServiceError) -> str:
    if not exc.errors:
        return str(exc.detail)
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.errors.items())


class Command(BaseCommand):
    # argparse needs a real string here; Django's own commands leave `help` untranslated.
    help = "Create an active tenant and its owner; optionally print a new admin API key."

    def add_arguments(self, parser):
        parser.add_argument("name", help=_("The tenant's display name."))
        parser.add_argument("--slug", required=True, help=_("Unique short name, e.g. acme."))
        parser.add_argument("--owner", required=True, help=_("The owner's email address."))
        parser.add_argument(
            "--api-key",
            action="store_true",
            help=_("Also create an admin API key and print it as the last line."),
        )
        parser.add_argument(
            "--language",
            default=Tenant.Language.ZH_HANS,
            choices=Tenant.Language.values,
            help=_("Language of the tenant's emails (default zh-hans)."),
        )
        parser.add_argument(
            "--price",
            default=None,
            help=_("Contract unit price in CNY per license-year (default: the list price)."),
        )

    def handle(self, *args, name: str, slug: str, owner: str, api_key: bool, **options):
        name = (name or "").strip()
        slug = (slug or "").strip()
        email = User.objects.normalize_email((owner or "").strip()).lower()
        price = self._price(options.get("price"))
        self._check(name=name, slug=slug, email=email)

        existed = User.objects.filter(email=email).exists()
        try:
            # One transaction: a refusal half-way (a slug taken meanwhile) leaves no user,
            # tenant or key behind.
            with transaction.atomic():
                user = user_get_or_create(email=email)
                tenant = tenant_create(
                    name=name,
                    slug=slug,
                    owner=user,
                    language=options["language"],
                    contract_unit_price=price,
                    actor=ACTOR,
                )
                raw = None
                if api_key:
                    _key, raw = api_key_create(
                        tenant=tenant,
                        name=_("created by createtenant"),
                        role=ApiKey.Role.ADMIN,
                        actor=ACTOR,
                    )
        except ServiceError as exc:
            raise CommandError(_errors_text(exc)) from exc

        self.stdout.write(
            _('Created tenant "%(name)s" (slug %(slug)s, id %(id)d), owner %(email)s.')
            % {"name": tenant.name, "slug": tenant.slug, "id": tenant.pk, "email": email}
        )
        if not existed:
            self.stdout.write(
                _(
                    "The owner has no password yet: use “Forgot password” on the login page, "
                    "or run: python manage.py changepassword %(email)s"
                )
                % {"email": email}
            )
        if raw is not None:
            self.stdout.write(_("Admin API key (shown once; store it now):"))
            # The contract: the key is the last line, alone.
            self.stdout.write(raw)

    @staticmethod
    def _price(value: str | None) -> Decimal | None:
        if value is None:
            return None
        try:
            price = Decimal(value)
        except InvalidOperation as exc:
            raise CommandError(_("--price must be a number such as 3600.00.")) from exc
        if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -2:
            raise CommandError(_("--price must be positive with at most two decimals."))
        return price

    @staticmethod
    def _check(*, name: str, slug: str, email: str) -> None:
        """Refuse bad input before anything is written, with the reason."""
        if not name or len(name) > 200:
            raise CommandError(_("NAME must be 1–200 characters."))
        try:
            slug_validator(slug)
        except ValidationError as exc:
            raise CommandError(
                _("Bad --slug %(slug)r: %(reason)s")
                % {
                    "slug": slug,
                    "reason": " ".join(exc.messages),
                }
            ) from exc
        if Tenant.objects.filter(slug=slug).exists():
            raise CommandError(_("A tenant with slug %(slug)r already exists.") % {"slug": slug})
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(
                _("Bad --owner %(email)r: enter a valid email address.") % {"email": email}
            ) from exc
