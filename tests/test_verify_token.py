"""The reference verifier for gateway vendors (tools/verify_token.py, R14): it verifies a
token offline, fetches the JWKS again for an unknown key id, and refuses a tampered, foreign
or expired token with a clear reason."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tools import verify_token


def keypair(kid: str):
    private = Ed25519PrivateKey.generate()
    entry = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key()))
    return private, {**entry, "kid": kid, "use": "sig", "alg": "EdDSA"}


def sign(private, kid: str, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": "https://console.example",
        "sub": "7",
        "tenant": "acme",
        "serial": "haul_7",
        "code": "VALID",
        "granted_cameras": [11, 12],
        "licenses_valid": 2,
        "iat": now,
        "exp": now + 900,
        "jti": "a" * 32,
        **claims,
    }
    return jwt.encode(body, private, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def key():
    return keypair("k1")


@pytest.fixture
def jwks_file(tmp_path, key):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key[1]]}))
    return path


def test_a_good_token_prints_the_granted_cameras_and_the_seconds_left(jwks_file, key, capsys):
    token = sign(key[0], "k1")
    assert verify_token.main([token, "--jwks", str(jwks_file), "--device", "7"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["granted_cameras"] == [11, 12] and out["code"] == "VALID"
    assert 890 <= out["seconds_left"] <= 900
    assert out["renew_in_seconds"] == out["seconds_left"] // 2


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered", "bad signature"),
        ("expired", "expired"),
        ("unknown key", "unknown signing key"),
        ("other device", "issued for device"),
        ("other issuer", "another console"),
        ("not a token", "not a token"),
        ("hs256", "only EdDSA"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(jwks_file, key, capsys, case, reason):
    private, _entry = key
    if case == "tampered":
        header, _payload, signature = sign(private, "k1").split(".")
        forged = jwt.utils.base64url_encode(
            json.dumps({"sub": "7", "granted_cameras": [1, 2, 3, 4]}).encode()
        ).decode()
        token = f"{header}.{forged}.{signature}"
    elif case == "expired":
        token = sign(private, "k1", iat=int(time.time()) - 2000, exp=int(time.time()) - 5)
    elif case == "unknown key":
        token = sign(keypair("k2")[0], "k2")
    elif case == "other device":
        token = sign(private, "k1", sub="8")
    elif case == "other issuer":
        token = sign(private, "k1", iss="https://elsewhere.example")
    elif case == "hs256":
        token = jwt.encode({"sub": "7"}, "secret-secret-secret-secret-32b!", algorithm="HS256")
    else:
        token = "not.a.token"
    argv = [token, "--jwks", str(jwks_file), "--device", "7"]
    argv += ["--issuer", "https://console.example"]
    assert verify_token.main(argv) == 1
    assert reason in capsys.readouterr().err


def test_an_unknown_kid_fetches_the_jwks_again_once(key):
    private_new, entry_new = keypair("k2")
    fetched = []

    def fetch():
        fetched.append(1)
        return {"keys": [key[1]] if len(fetched) == 1 else [key[1], entry_new]}

    keys = verify_token.KeySet(fetch=fetch)
    assert verify_token.verify(sign(key[0], "k1"), keys)["sub"] == "7"
    assert len(fetched) == 1  # cached
    assert verify_token.verify(sign(private_new, "k2"), keys)["sub"] == "7"
    assert len(fetched) == 2  # the rotated-in key, after one more fetch
    with pytest.raises(verify_token.TokenRefused):
        verify_token.verify(sign(keypair("k3")[0], "k3"), keys)
    assert len(fetched) == 3  # one try per unknown key, never a loop


@pytest.mark.django_db
def test_a_console_token_verifies_with_the_console_jwks(tmp_path, client, operator_api, tenant):
    from django.conf import settings

    from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory

    device = DeviceFactory(tenant=tenant)
    camera = CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    token = operator_api.post(
        f"/api/v1/devices/{device.pk}/entitlement-token", {}, format="json"
    ).json()["token"]
    path = tmp_path / "jwks.json"
    path.write_text(client.get("/.well-known/jwks.json").content.decode())
    keys = verify_token.KeySet(fetch=lambda: verify_token.load_jwks(str(path)))
    claims = verify_token.verify(token, keys, issuer=settings.SITE_URL, device=str(device.pk))
    assert claims["granted_cameras"] == [camera.pk]
