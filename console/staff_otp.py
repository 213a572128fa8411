"""Two-factor sign-in for staff (CONTRACT "More settings": STAFF_2FA_REQUIRED), on django-otp.

A staff user's second factor is one TOTP device (an authenticator app) plus one static
device holding single-use recovery codes. With STAFF_2FA_REQUIRED, StaffTwoFactorMiddleware
sends a staff user whose session is not verified from any admin page to the enrolment page
(no confirmed device yet) or to the verification page. Customers' console pages never ask.

django-otp keeps the verification in the session (django_otp.login); logging out ends it.
Failed codes are throttled per device by django-otp (1, 2, 4 … seconds between attempts).
"""

import io
from base64 import b32encode
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django_otp import devices_for_user, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.models import User
from console.services import audit_record

RECOVERY_CODE_COUNT = 10
TOTP_NAME = "authenticator"
RECOVERY_NAME = "recovery codes"


# --- Selectors -----------------------------------------------------------------------------
def staff_2fa_required(user) -> bool:
    return bool(settings.STAFF_2FA_REQUIRED) and user.is_authenticated and user.is_staff


def staff_has_second_factor(user: User) -> bool:
    return user_has_device(user, confirmed=True)


def totp_secret_text(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it when typed: base32, in groups of four."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def totp_qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL as an inline SVG QR code, drawn on the server (no script, no
    image request)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    out = io.BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    # Drop the XML declaration: the SVG is embedded in an HTML page.
    return svg[svg.index("<svg") :]


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


# --- Services ------------------------------------------------------------------------------
def totp_device_pending(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled: the same secret on every visit to the
    enrolment page until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def recovery_codes_issue(*, user: User, actor: User | str | None = None) -> list[str]:
    """New single-use recovery codes; the previous ones stop working. Only the returned list
    shows them: pages show it once."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        audit_record(
            tenant=None,
            action="staff.recovery_codes_issued",
            target=user,
            actor=actor or user,
            data={"count": len(codes)},
        )
    return codes


def totp_device_confirm(
    *, request: HttpRequest, device: TOTPDevice, token: str
) -> list[str] | None:
    """Confirm an enrolment with a code from the app: the device becomes the user's second
    factor, this session is verified by it, and the first recovery codes are returned.
    None for a wrong (or throttled) code; the failure is kept for the throttle."""
    import django_otp

    user = request.user
    token = "".join(token.split())
    with transaction.atomic():
        locked = (
            TOTPDevice.objects.select_for_update().filter(pk=device.pk, confirmed=False).first()
        )
        if locked is None or not locked.verify_token(token):
            return None
        # One authenticator per user: an older one (a reset left none) would be a second key.
        TOTPDevice.objects.filter(user=user).exclude(pk=locked.pk).delete()
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        audit_record(tenant=None, action="staff.2fa_enrolled", target=user, actor=user)
        codes = recovery_codes_issue(user=user, actor=user)
    django_otp.login(request, locked)
    return codes


def staff_otp_verify(*, request: HttpRequest, token: str) -> bool:
    """Verify this session with a code: six digits go to the authenticator, anything else is
    a recovery code (used up by the match). Each device is tried alone, so a recovery code
    never counts as a failed authenticator code towards its throttle."""
    import django_otp

    token = "".join(token.split()).lower()
    if not token:
        return False
    model = TOTPDevice if token.isdigit() else StaticDevice
    for device in model.objects.devices_for_user(request.user, confirmed=True):
        verified = django_otp.verify_token(request.user, device.persistent_id, token)
        if verified is not None:
            django_otp.login(request, verified)
            if model is StaticDevice:
                audit_record(
                    tenant=None,
                    action="staff.recovery_code_used",
                    target=request.user,
                    actor=request.user,
                    data={"left": recovery_codes_left(request.user)},
                )
            return True
    return False


def staff_2fa_reset(*, user: User, actor: User | str | None = None) -> int:
    """Remove every second-factor device of `user` (a lost phone): the next admin visit
    enrols again. Sessions verified by a removed device stop being verified, as django-otp's
    middleware finds no device for them. Returns how many devices were removed."""
    with transaction.atomic():
        removed = 0
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()
            removed += 1
        audit_record(
            tenant=None,
            action="staff.2fa_reset",
            target=user,
            actor=actor,
            data={"devices_removed": removed},
        )
    return removed


# --- Middleware ----------------------------------------------------------------------------
class StaffTwoFactorMiddleware:
    """After django_otp's OTPMiddleware: with STAFF_2FA_REQUIRED, no admin page opens for a
    staff user whose session a second factor has not verified. The log-in and log-out pages
    and the two-factor pages themselves stay reachable."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.admin_root: str | None = None

    def __call__(self, request):
        redirect = self._redirect(request)
        if redirect is not None:
            return redirect
        return self.get_response(request)

    def _redirect(self, request):
        # Resolved once (the URL conf is not loaded when middleware is built): this runs on
        # every request, the gateways' API calls included.
        if self.admin_root is None:
            self.admin_root = reverse("admin:index")
        if not request.path.startswith(self.admin_root):
            return None
        user = request.user
        if not staff_2fa_required(user) or user.is_verified():
            return None
        open_paths = (
            reverse("admin:login"),
            reverse("admin:logout"),
            reverse("staff-2fa-setup"),
            reverse("staff-2fa-verify"),
        )
        if request.path in open_paths:
            return None
        target = "staff-2fa-verify" if staff_has_second_factor(user) else "staff-2fa-setup"
        return HttpResponseRedirect(
            f"{reverse(target)}?{urlencode({'next': request.get_full_path()})}"
        )
