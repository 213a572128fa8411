"""R14: offline entitlement tokens — the entitlement decision, signed with Ed25519, verified
with the published JWKS; keys in the database, rotated without breaking tokens in flight."""

import datetime as dt

import jwt
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from console.models import ApiKey, Tenant
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory, make_api_key
from licensing import tokens
from licensing.models import EntitlementTokenRecord, License, SigningKey

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


@pytest.fixture
def now(time_machine):
    at = timezone.now().replace(microsecond=0)
    time_machine.move_to(at, tick=False)
    return at


@pytest.fixture
def device(tenant):
    device = DeviceFactory(tenant=tenant, serial="haul_7")
    CameraFactory(device=device, width=1280, height=720)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=640, height=480)
    return device


def ask(client, device_id, body=None, **extra):
    return client.post(
        f"/api/v1/devices/{device_id}/entitlement-token", body or {}, format="json", **extra
    )


def jwks(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.json()


def verify(client, token: str, **options) -> dict:
    """Verify as a gateway would, with PyJWT and the published keys."""
    kid = jwt.get_unverified_header(token)["kid"]
    (entry,) = [k for k in jwks(client)["keys"] if k["kid"] == kid]
    key = jwt.PyJWK(entry, algorithm="EdDSA").key
    return jwt.decode(token, key, algorithms=["EdDSA"], **options)


def test_the_token_carries_the_entitlement_decision(operator_api, client, tenant, device, now):
    for _i in range(2):
        LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 90 * DAY)
    response = ask(operator_api, device.pk)
    assert response.status_code == 200, response.json()
    body = response.json()
    entitlement = operator_api.post(
        f"/api/v1/devices/{device.pk}/entitlement", {}, format="json"
    ).json()
    assert body["entitlement"] == entitlement  # the same decision, the same answer
    claims = verify(client, body["token"], options={"verify_exp": True})
    assert claims["iss"] == "http://testserver" or claims["iss"].startswith("http")
    assert claims["sub"] == str(device.pk)
    assert claims["tenant"] == tenant.slug and claims["serial"] == "haul_7"
    assert claims["code"] == "VALID" == entitlement["code"]
    assert claims["granted_cameras"] == entitlement["granted_cameras"]
    assert claims["licenses_valid"] == 2
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] == int(now.timestamp()) + 900  # the TTL: licenses last longer
    assert len(claims["jti"]) == 32
    assert dt.datetime.fromisoformat(body["expires_at"]) == now + dt.timedelta(seconds=900)
    assert body["expires_at"].endswith("+08:00")
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "EdDSA" and header["kid"] == SigningKey.objects.get().kid
    # R10: a grant through a token serves the licenses, as the entitlement call does.
    assert not License.objects.filter(device=device, first_served_at__isnull=True).exists()


def test_exp_never_outlives_the_licenses_that_grant_it(operator_api, client, tenant, device, now):
    soon = now + dt.timedelta(seconds=300, microseconds=999_999)
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=soon)
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    body = ask(operator_api, device.pk).json()
    claims = verify(client, body["token"])
    assert claims["exp"] == int(now.timestamp()) + 300  # rounded down, never past
    assert claims["exp"] <= soon.timestamp()


@override_settings(ENTITLEMENT_TOKEN_TTL=120)
def test_exp_is_bounded_by_the_ttl_setting(operator_api, client, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    claims = verify(client, ask(operator_api, device.pk).json()["token"])
    assert claims["exp"] - claims["iat"] == 120


def test_a_changed_claim_fails_verification(operator_api, client, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    token = ask(operator_api, device.pk).json()["token"]
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["granted_cameras"] = [*claims["granted_cameras"], 999]
    forged_payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verify(client, f"{header}.{forged_payload}.{signature}")


def test_degraded_grants_only_what_fits(operator_api, client, tenant, device, now):
    device.cameras.update(priority=0)
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    body = ask(operator_api, device.pk).json()
    claims = verify(client, body["token"])
    assert claims["code"] == "DEGRADED" == body["entitlement"]["code"]
    assert claims["granted_cameras"] == body["entitlement"]["granted_cameras"]
    assert claims["licenses_valid"] == 1


def test_no_valid_license_no_token(operator_api, tenant, device, now):
    LicenseFactory(tenant=tenant)  # unbound
    response = ask(operator_api, device.pk)
    assert response.status_code == 403
    assert response.json()["code"] == "NO_VALID_LICENSE"
    assert "token" not in response.json()
    assert not EntitlementTokenRecord.objects.exists()


def test_a_suspended_tenant_gets_no_token(operator_api, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    response = ask(operator_api, device.pk)
    assert response.status_code == 403
    assert response.json()["code"] == "TENANT_SUSPENDED"


def test_it_validates_ownership(other_api, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    assert ask(other_api, device.pk).status_code == 404


def test_bad_input_as_the_entitlement_call(operator_api, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    foreign = CameraFactory(device=DeviceFactory(tenant=tenant))
    response = ask(operator_api, device.pk, {"cameras": [foreign.pk]})
    assert response.status_code == 400 and "cameras" in response.json()["errors"]
    assert ask(operator_api, 0).status_code == 404
    response = operator_api.generic(
        "POST",
        f"/api/v1/devices/{device.pk}/entitlement-token",
        "",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    assert not EntitlementTokenRecord.objects.exists()


def test_every_key_role_may_ask(tenant, device, now):
    from rest_framework.test import APIClient

    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    for role in ApiKey.Role.values:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, role)[1]}")
        assert ask(client, device.pk).status_code == 200


def test_the_device_keeps_its_last_token(operator_api, tenant, device, now, time_machine):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    ask(operator_api, device.pk)
    time_machine.shift(dt.timedelta(seconds=450))
    claims = jwt.decode(
        ask(operator_api, device.pk).json()["token"], options={"verify_signature": False}
    )
    record = EntitlementTokenRecord.objects.get(device=device)
    assert record.jti == claims["jti"] and record.code == claims["code"] == "DEGRADED"
    assert record.issued_at == now + dt.timedelta(seconds=450)
    assert record.expires_at == now + dt.timedelta(seconds=450 + 900)


def test_jwks_is_public_cacheable_and_holds_no_private_half(client, now):
    key = tokens.signing_key_current()
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age=300" in response["Cache-Control"] and "public" in response["Cache-Control"]
    (entry,) = response.json()["keys"]
    assert entry == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": key.public_key,
        "kid": key.kid,
        "use": "sig",
        "alg": "EdDSA",
    }
    assert key.private_key_encrypted not in response.content.decode()
    assert client.post("/.well-known/jwks.json").status_code == 405


def test_the_private_half_is_encrypted_with_a_key_derived_from_secret_key(settings, now):
    key = tokens.signing_key_current()
    raw_private = tokens._private_key(key)
    assert key.public_key not in key.private_key_encrypted
    # Another SECRET_KEY cannot decrypt it; the old one as a fallback still can.
    tokens._PRIVATE.clear()
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "another secret key that is long enough for the tests here"
    with pytest.raises(RuntimeError):
        tokens._private_key(key)
    settings.SECRET_KEY_FALLBACKS = [old]
    assert tokens._private_key(key).public_key().public_bytes_raw() == (
        raw_private.public_key().public_bytes_raw()
    )


def test_rotation_keeps_old_tokens_verifiable_and_new_tokens_carry_the_new_kid(
    operator_api, client, tenant, device, now, time_machine
):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    old_token = ask(operator_api, device.pk).json()["token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    call_command("rotatesigningkey", stdout=open("/dev/null", "w"))  # noqa: SIM115
    new = SigningKey.objects.order_by("-generation").first()
    # Published at once, signing only after the JWKS's cache lifetime.
    assert {k["kid"] for k in jwks(client)["keys"]} == {old_kid, new.kid}
    assert jwt.get_unverified_header(ask(operator_api, device.pk).json()["token"])["kid"] == old_kid
    time_machine.shift(dt.timedelta(seconds=300))
    new_token = ask(operator_api, device.pk).json()["token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    verify(client, old_token)  # still verifiable while it may be valid
    verify(client, new_token)
    # Once every token the old key signed has expired, it is no longer published.
    time_machine.shift(dt.timedelta(seconds=901))
    assert [k["kid"] for k in jwks(client)["keys"]] == [new.kid]


def test_rotation_now_and_retire_old(operator_api, client, tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    old_token = ask(operator_api, device.pk).json()["token"]
    call_command("rotatesigningkey", "--now", "--retire-old", stdout=open("/dev/null", "w"))  # noqa: SIM115
    new = SigningKey.objects.order_by("-generation").first()
    assert [k["kid"] for k in jwks(client)["keys"]] == [new.kid]
    assert jwt.get_unverified_header(ask(operator_api, device.pk).json()["token"])["kid"] == new.kid
    with pytest.raises(ValueError):
        verify(client, old_token)  # its key is gone from the JWKS


def test_the_first_key_is_made_once(now):
    first = tokens.signing_key_current()
    assert tokens.signing_key_current() == first
    assert SigningKey.objects.count() == 1 and first.generation == 1


@pytest.mark.django_db(transaction=True)
def test_postgresql_first_use_from_many_workers_makes_one_key(postgres_only):
    """Every web process signs with the same key: the first key is made once even when
    several processes ask for it at the same moment."""
    import threading

    from django.db import connections

    kids, errors = [], []

    def first_use():
        try:
            kids.append(tokens.signing_key_current().kid)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_use) for _i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(kids)) == 1 and SigningKey.objects.count() == 1


def test_the_device_page_shows_the_last_token_and_what_the_ttl_means(
    operator_api, owner, english, tenant, device, now
):
    page = owner.get(f"/devices/{device.pk}/").content.decode()
    assert "has not asked for a signed entitlement yet" in page
    assert "up to 15 minutes" in page and "when its token expires" in page
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 9 * DAY)
    ask(operator_api, device.pk)
    page = owner.get(f"/devices/{device.pk}/").content.decode()
    until = timezone.localtime(now + dt.timedelta(seconds=900)).strftime("%Y-%m-%d %H:%M:%S")
    assert "Last signed entitlement" in page and until in page and "still valid" in page
