"""`manage.py seeddemo`: demo tenants, users, devices, licenses and API keys for a first look.

Safe to run again: everything is looked up by a natural key (email, slug, serial, cockpit
name, key digest) and only what is missing is created; licenses are issued once per demo
tenant and bound up to each device's target. Every write goes through the services, so the
demo data is audited like real data, and the licenses come from orders placed and paid
through billing's services, as a customer's do (the Orders page shows them). The demo
logins are printed in English and in Chinese.

Like the API and the pages, a management command is a top-layer entry point: it may use
every app's services (devices, licensing) even though it lives in console.
"""

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from billing import services as billing
from billing.models import Order
from console.models import ApiKey, Membership, Tenant, User, api_key_digest
from console.services import audit_record, tenant_create, user_get_or_create
from devices import services as device_services
from devices.models import FieldDevice, RemoteCockpit
from licensing import selectors as license_selectors
from licensing import services as license_services
from licensing.models import License

ACTOR = "command:seeddemo"
STAFF_EMAIL = "staff@demo.example.com"
STAFF_PASSWORD = "demo-staff-2026"
OWNER_PASSWORD = "demo-owner-2026"
VIEWER_PASSWORD = "demo-viewer-2026"
# The purchase guide's example device (R1): 1,536,000 px → 1.67 → 2 licenses.
GUIDE_CAMERAS = [
    ("front", 1280, 720, 10),
    ("left", 640, 480, 5),
    ("right", 640, 480, 1),
]


@dataclass(frozen=True)
class DemoDevice:
    serial: str
    name: str
    cameras: list[tuple[str, int, int, int]]
    licenses: int  # how many valid licenses the demo binds to it
    max_concurrent_streams: int | None = None


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    language: str
    owner: str
    viewer: str | None
    devices: list[DemoDevice]
    cockpits: list[str]


DEMO_TENANTS = [
    DemoTenant(
        slug="demo-mining",
        name="示范矿业 Demo Mining",
        language=Tenant.Language.ZH_HANS,
        owner="owner@mining.demo.example.com",
        viewer="viewer@mining.demo.example.com",
        devices=[
            # Licensed: the guide's device with the 2 licenses it needs.
            DemoDevice("haul_truck_01", "矿卡 01", GUIDE_CAMERAS, licenses=2),
            # Under-licensed: the same cameras, 1 license → degraded service (R6).
            DemoDevice("haul_truck_02", "矿卡 02", GUIDE_CAMERAS, licenses=1),
            # Unlicensed: no license at all → no service, no control (R6, R8).
            DemoDevice("dozer_03", "推土机 03", [("cab", 1920, 1080, 0)], licenses=0),
        ],
        cockpits=["远程驾驶舱 A", "远程驾驶舱 B"],
    ),
    DemoTenant(
        slug="demo-ports",
        name="Demo Ports",
        language=Tenant.Language.EN,
        owner="owner@ports.demo.example.com",
        viewer=None,
        devices=[
            DemoDevice(
                "crane_01",
                "Quay crane 01",
                [("hoist", 1920, 1080, 5), ("trolley", 1280, 720, 3), ("spreader", 1280, 720, 1)],
                licenses=3,
                max_concurrent_streams=2,
            ),
            DemoDevice("agv_02", "AGV 02", [("front", 1280, 720, 0)], licenses=1),
        ],
        cockpits=["Control room 1"],
    ),
]
# Besides what the devices need, one spare unbound license per tenant.
SPARE_LICENSES = 1
# One license of each tenant was paid 340 days ago: it expires within 30 days, so the
# renewal reminders (R11) have something to say.
EXPIRING_PAID_DAYS_AGO = 340


def demo_api_key(slug: str) -> str:
    """The demo tenant's admin API key, derived from SECRET_KEY.

    The same on every run of one installation, so it can be printed every time although
    only its digest is stored — and unknown to anyone who has the code but not the
    installation's secret, so demo data never carries a publicly known key."""
    mac = hmac.new(settings.SECRET_KEY.encode(), f"seeddemo:{slug}".encode(), hashlib.sha256)
    return f"fc_demo_{mac.hexdigest()[:40]}"


class Command(BaseCommand):
    # argparse needs a real string here; Django's own commands leave `help` untranslated.
    help = "Load demo tenants, users, devices, licenses and API keys; safe to run again."

    def handle(self, *args, **options):
        self.created: list[str] = []
        now = timezone.now()
        with transaction.atomic():
            staff = self._staff()
            keys = {}
            for spec in DEMO_TENANTS:
                tenant = self._tenant(spec)
                self._devices(tenant, spec)
                self._cockpits(tenant, spec)
                self._licenses(tenant, spec, now)
                keys[spec.slug] = self._api_key(tenant)
        self._report(staff, keys)

    # --- pieces ---------------------------------------------------------------------------

    def _user(self, email: str, password: str, **extra) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = user_get_or_create(email=email, password=password, **extra)
            self.created.append(_("user %(email)s") % {"email": email})
        return user

    def _staff(self) -> User:
        user = User.objects.filter(email=STAFF_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(
                STAFF_EMAIL, STAFF_PASSWORD, full_name="Demo Staff"
            )
            self.created.append(_("staff user %(email)s") % {"email": STAFF_EMAIL})
        return user

    def _tenant(self, spec: DemoTenant) -> Tenant:
        owner = self._user(spec.owner, OWNER_PASSWORD, full_name=f"{spec.name} owner")
        if owner.language != spec.language:
            owner.language = spec.language
            owner.save(update_fields=["language"])
        tenant = Tenant.objects.filter(slug=spec.slug).first()
        if tenant is None:
            tenant = tenant_create(
                name=spec.name, slug=spec.slug, owner=owner, language=spec.language, actor=ACTOR
            )
            self.created.append(_("tenant %(slug)s") % {"slug": spec.slug})
        if spec.viewer:
            viewer = self._user(spec.viewer, VIEWER_PASSWORD, full_name=f"{spec.name} viewer")
            membership, made = Membership.objects.get_or_create(
                user=viewer, tenant=tenant, defaults={"role": Membership.Role.VIEWER}
            )
            if made:
                audit_record(
                    tenant=tenant,
                    action="membership.created",
                    target=membership,
                    actor=ACTOR,
                    data={"user": viewer.email, "role": membership.role},
                )
        return tenant

    def _devices(self, tenant: Tenant, spec: DemoTenant) -> None:
        for demo in spec.devices:
            if FieldDevice.objects.filter(tenant=tenant, serial=demo.serial).exists():
                continue
            device = device_services.device_create(
                tenant=tenant,
                serial=demo.serial,
                name=demo.name,
                max_concurrent_streams=demo.max_concurrent_streams,
                actor=ACTOR,
            )
            for name, width, height, priority in demo.cameras:
                device_services.camera_create(
                    tenant=tenant,
                    device=device,
                    name=name,
                    width=width,
                    height=height,
                    priority=priority,
                    actor=ACTOR,
                )
            self.created.append(
                _("device %(slug)s/%(serial)s") % {"slug": spec.slug, "serial": demo.serial}
            )

    def _cockpits(self, tenant: Tenant, spec: DemoTenant) -> None:
        for name in spec.cockpits:
            if not RemoteCockpit.objects.filter(tenant=tenant, name=name).exists():
                device_services.cockpit_create(tenant=tenant, name=name, actor=ACTOR)
                self.created.append(
                    _("cockpit %(slug)s/%(name)s") % {"slug": spec.slug, "name": name}
                )

    def _paid_order(self, tenant: Tenant, *, quantity: int, paid_at: dt.datetime, tag: str):
        """A new-licenses order placed and paid at `paid_at`, as a customer's would be, so
        the demo's Orders page shows where its licenses came from."""
        order = billing.order_create(
            tenant=tenant, kind=Order.Kind.NEW, years=1, quantity=quantity, actor=ACTOR, at=paid_at
        )
        confirmation = billing.order_confirm_payment(
            order=order, reference=f"DEMO-{tenant.slug}-{tag}", actor=ACTOR, at=paid_at
        )
        return License.objects.filter(pk__in=confirmation.license_ids).order_by("id")

    def _licenses(self, tenant: Tenant, spec: DemoTenant, now: dt.datetime) -> None:
        # Once per tenant: its first run places and pays two orders; a re-run finds them.
        if not Order.objects.filter(tenant=tenant).exists() and not (
            License.objects.filter(tenant=tenant).exists()
        ):
            needed = sum(d.licenses for d in spec.devices) + SPARE_LICENSES
            expiring = self._paid_order(
                tenant,
                quantity=1,
                paid_at=now - dt.timedelta(days=EXPIRING_PAID_DAYS_AGO),
                tag="1",
            )
            self._paid_order(tenant, quantity=needed - 1, paid_at=now, tag="2")
            self.created.append(
                _("%(n)d licenses for %(slug)s, in 2 paid orders")
                % {"n": needed, "slug": spec.slug}
            )
            # The expiring license serves the first licensed device, so its reminder names
            # a device that would lose service.
            first = next(d for d in spec.devices if d.licenses)
            license_services.license_bind(
                tenant=tenant,
                license=expiring[0],
                device=FieldDevice.objects.get(tenant=tenant, serial=first.serial),
                at=now,
                actor=ACTOR,
            )
        for demo in spec.devices:
            device = FieldDevice.objects.get(tenant=tenant, serial=demo.serial)
            have = license_selectors.device_valid_licenses(tenant, device, at=now).count()
            missing = demo.licenses - have
            free = License.objects.filter(tenant=tenant, device__isnull=True).valid_at(now).count()
            if missing > 0 and free >= missing:
                license_services.licenses_bind_count(
                    tenant=tenant, device=device, count=missing, at=now, actor=ACTOR
                )
                self.created.append(
                    ngettext(
                        "%(n)d license bound to %(slug)s/%(serial)s",
                        "%(n)d licenses bound to %(slug)s/%(serial)s",
                        missing,
                    )
                    % {"n": missing, "slug": spec.slug, "serial": demo.serial}
                )

    def _api_key(self, tenant: Tenant) -> str | None:
        raw = demo_api_key(tenant.slug)
        digest = api_key_digest(raw)
        if ApiKey.objects.filter(digest=digest, tenant=tenant).exists():
            return raw
        if ApiKey.objects.filter(tenant=tenant, name="demo").exists():
            # Made under another SECRET_KEY: its raw value cannot be shown again.
            return None
        key = ApiKey.objects.create(
            tenant=tenant, name="demo", role=ApiKey.Role.ADMIN, prefix=raw[:10], digest=digest
        )
        audit_record(
            tenant=tenant,
            action="api_key.created",
            target=key,
            actor=ACTOR,
            data={"name": key.name, "role": key.role, "prefix": key.prefix},
        )
        self.created.append(_("API key for %(slug)s") % {"slug": tenant.slug})
        return raw

    # --- output ---------------------------------------------------------------------------

    def _report(self, staff: User, keys: dict[str, str | None]) -> None:
        out = self.stdout.write
        if self.created:
            out(_("Created: %(what)s.") % {"what": ", ".join(self.created)})
        else:
            out(_("Demo data already present; nothing created."))
        # The logins in English and in Chinese, whatever the shell's language: the demo's
        # two tenants speak one each.
        for language in ("en", "zh-hans"):
            with translation.override(language):
                self._report_logins(keys)

    def _report_logins(self, keys: dict[str, str | None]) -> None:
        out = self.stdout.write
        out("")
        out(_("Demo logins (email / password):"))
        out(f"  {STAFF_EMAIL} / {STAFF_PASSWORD}   " + _("(staff superuser: /admin/)"))
        for spec in DEMO_TENANTS:
            out(
                f"  {spec.owner} / {OWNER_PASSWORD}   "
                + _("(owner of %(slug)s)") % {"slug": spec.slug}
            )
            if spec.viewer:
                out(
                    f"  {spec.viewer} / {VIEWER_PASSWORD}   "
                    + _("(viewer of %(slug)s)") % {"slug": spec.slug}
                )
        out(_("Demo API keys (Authorization: Bearer <key>, role admin):"))
        for slug, raw in keys.items():
            shown = raw or _(
                "a demo key exists but was made with another SECRET_KEY; revoke it in the "
                "admin and run seeddemo again for a new one"
            )
            out(f"  {slug}: {shown}")
