"""Staff two-factor sign-in (CONTRACT "More settings": STAFF_2FA_REQUIRED): no admin page
before a TOTP code; enrolment with a secret and QR code, single-use recovery codes, the
reset command; customers' console pages never ask. STAFF_2FA_REQUIRED is on here, as in
production, and staff log in without conftest's verified force_login (marker staff_2fa)."""

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.models import AuditEvent, User
from console.staff_otp import RECOVERY_CODE_COUNT, recovery_codes_issue

pytestmark = [pytest.mark.django_db, pytest.mark.staff_2fa, pytest.mark.usefixtures("english")]

ROOT = Path(__file__).resolve().parents[2]
START = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.UTC)


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def staff_user(db):
    return User.objects.create_superuser("rita@example.com", "pw")


@pytest.fixture
def enrolled(staff_user):
    """rita with a confirmed authenticator and recovery codes."""
    device = TOTPDevice.objects.create(user=staff_user, name="authenticator", confirmed=True)
    codes = recovery_codes_issue(user=staff_user)
    return {"user": staff_user, "device": device, "codes": codes}


def test_staff_without_a_device_are_sent_to_enrol_and_enrol_with_a_code(
    client, staff_user, clock, settings
):
    assert settings.STAFF_2FA_REQUIRED is True
    client.force_login(staff_user)
    for path in ("/admin/", "/admin/billing/order/", "/admin/password_change/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/2fa/setup/?next=")

    page = client.get("/admin/2fa/setup/?next=/admin/billing/order/")
    assert page.status_code == 200
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', html).group(1)
    assert device.config_url.split("secret=")[1].startswith(secret.replace(" ", "")[:8])
    assert "<svg" in html and "<path" in html  # the QR code, drawn on the server
    # The same secret on a second visit, until confirmed.
    assert client.get("/admin/2fa/setup/").content.decode().count(secret) == 1
    assert TOTPDevice.objects.filter(user=staff_user).count() == 1

    wrong = client.post("/admin/2fa/setup/", {"code": "000000", "next": "/admin/"})
    assert wrong.status_code == 200
    assert "That code is wrong" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302

    clock.shift(5)  # past the throttle's delay after one failure
    done = client.post(
        "/admin/2fa/setup/", {"code": code_for(device), "next": "/admin/billing/order/"}
    )
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", done.content.decode())
    assert len(codes) == RECOVERY_CODE_COUNT == 10 and len(set(codes)) == 10
    assert 'href="/admin/billing/order/"' in done.content.decode()
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/billing/order/").status_code == 200
    assert AuditEvent.objects.filter(action="staff.2fa_enrolled", actor=staff_user).count() == 1
    # Enrolled: the setup page no longer shows a secret.
    assert client.get("/admin/2fa/setup/").status_code == 302


def test_staff_with_a_device_verify_and_a_wrong_code_is_refused(client, enrolled, clock):
    device = enrolled["device"]
    client.force_login(enrolled["user"])
    response = client.get("/admin/tenants/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/2fa/verify/?next=%2Fadmin%2Ftenants%2F"
    assert client.get("/admin/2fa/setup/")["Location"] == "/admin/2fa/verify/"

    wrong = client.post("/admin/2fa/verify/", {"code": "123456", "next": "/admin/"})
    assert wrong.status_code == 200
    assert "That code is wrong" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302
    # Throttled: even the right code is refused right after a failure.
    assert client.post("/admin/2fa/verify/", {"code": code_for(device)}).status_code == 200
    assert client.get("/admin/").status_code == 302

    clock.shift(31)
    ok = client.post("/admin/2fa/verify/", {"code": code_for(device), "next": "/admin/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # The same code is not taken twice (another session, same time step).
    other = type(client)()
    other.force_login(enrolled["user"])
    assert other.post("/admin/2fa/verify/", {"code": code_for(device)}).status_code == 200
    assert other.get("/admin/").status_code == 302


def test_verify_never_redirects_off_site(client, enrolled, clock):
    client.force_login(enrolled["user"])
    response = client.post(
        "/admin/2fa/verify/",
        {"code": code_for(enrolled["device"]), "next": "https://evil.example/admin/"},
    )
    assert response["Location"] == "/admin/"


def test_a_recovery_code_signs_in_once(client, enrolled, clock):
    user, code = enrolled["user"], enrolled["codes"][0]
    client.force_login(user)
    response = client.post("/admin/2fa/verify/", {"code": code.upper(), "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == RECOVERY_CODE_COUNT - 1
    assert AuditEvent.objects.filter(action="staff.recovery_code_used").count() == 1

    client.post("/admin/logout/")
    clock.shift(60)
    client.force_login(user)
    again = client.post("/admin/2fa/verify/", {"code": code, "next": "/admin/"})
    assert again.status_code == 200
    assert client.get("/admin/").status_code == 302
    clock.shift(60)
    assert client.post("/admin/2fa/verify/", {"code": enrolled["codes"][1]}).status_code == 302


def test_new_recovery_codes_replace_the_old_ones(client, enrolled, clock):
    user = enrolled["user"]
    client.force_login(user)
    client.post("/admin/2fa/verify/", {"code": code_for(enrolled["device"])})
    page = client.get("/admin/2fa/recovery-codes/")
    assert "You have 10 unused recovery codes." in page.content.decode()
    new = client.post("/admin/2fa/recovery-codes/")
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", new.content.decode())
    assert len(codes) == 10 and not set(codes) & set(enrolled["codes"])
    assert StaticDevice.objects.filter(user=user).count() == 1
    assert set(StaticToken.objects.values_list("token", flat=True)) == set(codes)


def test_the_admin_header_links_to_the_recovery_codes_once_verified(
    client, enrolled, staff_user, clock, settings
):
    link = 'id="staff-2fa-recovery-codes-link" href="/admin/2fa/recovery-codes/"'
    client.force_login(enrolled["user"])
    # Not verified yet: the verification page's header has no such link.
    assert link not in client.get("/admin/2fa/verify/").content.decode()
    client.post("/admin/2fa/verify/", {"code": code_for(enrolled["device"])})
    for path in ("/admin/", "/admin/billing/order/", "/admin/2fa/recovery-codes/"):
        html = client.get(path).content.decode()
        user_tools = html[html.index('id="user-tools"') : html.index('id="logout-form"')]
        assert link in user_tools and "Recovery codes" in user_tools
        assert "/admin/password_change/" in user_tools  # beside change password and log out


def test_the_admin_header_has_no_recovery_codes_link_without_a_second_factor(
    client, staff_user, settings
):
    settings.STAFF_2FA_REQUIRED = False
    client.force_login(staff_user)
    html = client.get("/admin/").content.decode()
    assert 'id="logout-form"' in html
    assert "staff-2fa-recovery-codes-link" not in html


def test_the_reset_command_removes_the_second_factor(client, enrolled, clock):
    user = enrolled["user"]
    client.force_login(user)
    client.post("/admin/2fa/verify/", {"code": code_for(enrolled["device"])})
    assert client.get("/admin/").status_code == 200

    out = io.StringIO()
    call_command("resetstaff2fa", "RITA@example.com", stdout=out)
    assert "Removed 2 second-factor device(s) of rita@example.com" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="staff.2fa_reset")
    assert event.actor_label == "command:resetstaff2fa"
    assert event.data == {"devices_removed": 2}
    # The verified session is verified no longer: the next admin page enrols again.
    assert client.get("/admin/")["Location"].startswith("/admin/2fa/setup/")

    out = io.StringIO()
    call_command("resetstaff2fa", "rita@example.com", stdout=out)
    assert "had no second factor" in out.getvalue()
    with pytest.raises(CommandError, match="No user"):
        call_command("resetstaff2fa", "nobody@example.com")


def test_the_reset_command_refuses_a_customer(alice):
    with pytest.raises(CommandError, match="not a staff user"):
        call_command("resetstaff2fa", alice.email)


def test_customers_console_pages_never_ask_for_a_second_factor(client, alice):
    client.force_login(alice)
    assert client.get("/devices/").status_code == 200
    assert client.get("/orders/").status_code == 200
    # The admin stays closed to them as before: its login page, not a second factor.
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/2fa/setup/")["Location"].startswith("/admin/login/")
    assert not TOTPDevice.objects.exists()


def test_staff_pass_without_a_code_when_not_required(client, staff_user, settings):
    settings.STAFF_2FA_REQUIRED = False
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200


def test_anonymous_visitors_get_the_admin_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/admin/login/").status_code == 200


def required_by_default(**env: str) -> bool:
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'console.settings'; "
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STAFF_2FA_REQUIRED))"
    )
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**keep, "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_staff_2fa_required_follows_debug_unless_set():
    assert required_by_default() is True
    assert required_by_default(DEBUG="false") is True
    assert required_by_default(DEBUG="true") is False
    assert required_by_default(DEBUG="true", STAFF_2FA_REQUIRED="true") is True
    assert required_by_default(STAFF_2FA_REQUIRED="false") is False
