"""R14: offline entitlement tokens — the entitlement call's decision, signed.

A gateway that holds a token may stream what it grants until `exp`, even while it cannot
reach the console: `exp` is the earlier of now + ENTITLEMENT_TOKEN_TTL and the earliest
expiry of the licenses that grant it. The token is a JWT signed with EdDSA (Ed25519) by PyJWT
on `cryptography`'s keys; gateways verify it with the keys published at
/.well-known/jwks.json (the reference verifier is tools/verify_token.py).

Keys live in the database (licensing.models.SigningKey) so that every web process signs with
the same one. Their private halves are encrypted at rest with a Fernet key derived (HKDF)
from SECRET_KEY; SECRET_KEY_FALLBACKS still decrypt, so rotating SECRET_KEY keeps them. The
first key is made on first use. A rotated-in key is published at once and signs only once
the JWKS's cache lifetime has passed, so a gateway holding a cached JWKS knows the key
before it meets a token signed with it; `--now` (a compromised key) signs at once.

Suspension, unbinding and refunds take effect for tokens at their `exp`: the TTL is the
bound on that delay (README, "Offline entitlement tokens").
"""

import base64
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Forbidden
from console.models import Tenant
from console.services import Actor, audit_record
from licensing import rules
from licensing.models import EntitlementTokenRecord, SigningKey
from licensing.services.entitlement import Entitlement, entitlement_decide

ALGORITHM = "EdDSA"
_HKDF_INFO = b"field-console entitlement signing keys"


# --- keys at rest ------------------------------------------------------------------------------


def _fernet_for(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _fernet() -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it or any of SECRET_KEY_FALLBACKS."""
    secrets_ = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(secret) for secret in secrets_])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Private keys are immutable: each process keeps the ones it has decrypted (never written
# anywhere, never logged), so a token costs no key derivation.
_PRIVATE: dict[str, Ed25519PrivateKey] = {}


def _private_key(key: SigningKey) -> Ed25519PrivateKey:
    private = _PRIVATE.get(key.kid)
    if private is None:
        try:
            raw = _fernet().decrypt(key.private_key_encrypted.encode())
        except InvalidToken as exc:
            raise RuntimeError(
                f"entitlement signing key {key.kid} cannot be decrypted with SECRET_KEY or "
                "SECRET_KEY_FALLBACKS"
            ) from exc
        private = _PRIVATE[key.kid] = Ed25519PrivateKey.from_private_bytes(raw)
    return private


def _new_key(*, generation: int, signs_from: dt.datetime, at: dt.datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SigningKey.objects.create(
        generation=generation,
        kid=secrets.token_hex(8),
        public_key=_b64url(raw_public),
        private_key_encrypted=_fernet().encrypt(raw_private).decode(),
        created_at=at,
        signs_from=signs_from,
    )


# --- which keys sign and which are published -------------------------------------------------


def jwks_max_age() -> int:
    return settings.ENTITLEMENT_JWKS_MAX_AGE


def token_ttl() -> int:
    return settings.ENTITLEMENT_TOKEN_TTL


def signing_key_current(*, at: dt.datetime | None = None) -> SigningKey:
    """The key that signs now: the newest unretired key whose signing has begun. The first
    key is made on first use; two processes making it at once meet generation's unique
    constraint, and the loser reads the winner's key."""
    at = at or timezone.now()
    unretired = SigningKey.objects.filter(retired_at__isnull=True).order_by("-generation")
    key = unretired.filter(signs_from__lte=at).first()
    if key is not None:
        return key
    # Only keys that have not begun signing may be left (every older one retired): the
    # newest of them signs — a retired key never does. None at all: make the first.
    key = unretired.first()
    if key is not None:
        return key
    generation = (SigningKey.objects.aggregate(top=Max("generation"))["top"] or 0) + 1
    # Read again after the generation: a key another process committed before that read is
    # found here; one committed after it took the same generation, and ours fails below.
    key = unretired.first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            return _new_key(generation=generation, signs_from=at, at=at)
    except IntegrityError:
        return unretired[0]


def published_keys(*, at: dt.datetime | None = None) -> list[SigningKey]:
    """Every key whose tokens may still be valid, and any that will sign soon: unretired
    keys, minus those whose successor began signing more than a TTL ago (their last token
    has expired)."""
    at = at or timezone.now()
    signing_key_current(at=at)  # the first key is made on first use, a JWKS fetch included
    keys = list(SigningKey.objects.filter(retired_at__isnull=True).order_by("generation"))
    ttl = dt.timedelta(seconds=token_ttl())
    published = []
    for key, successor in zip(keys, [*keys[1:], None], strict=False):
        if successor is None or successor.signs_from + ttl > at:
            published.append(key)
    return published


def jwk(key: SigningKey) -> dict:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": key.public_key,
        "kid": key.kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


@transaction.atomic
def signing_key_rotate(
    *,
    now: bool = False,
    retire_old: bool = False,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> SigningKey:
    """Add a new signing key, published at once. It signs once the JWKS's cache lifetime has
    passed, or at once with `now`. `retire_old` unpublishes every older key (a compromised
    key: its tokens stop verifying wherever the JWKS is fetched again) and so implies `now`:
    something must sign."""
    at = at or timezone.now()
    signs_from = at if (now or retire_old) else at + dt.timedelta(seconds=jwks_max_age())
    # The newest key row, locked: two rotations at once queue up here (on PostgreSQL); the
    # unique generation is the last word either way.
    top = SigningKey.objects.select_for_update().order_by("-generation").first()
    generation = (top.generation if top else 0) + 1
    key = _new_key(generation=generation, signs_from=signs_from, at=at)
    retired = []
    if retire_old:
        old = SigningKey.objects.filter(retired_at__isnull=True, generation__lt=generation)
        retired = list(old.values_list("kid", flat=True))
        old.update(retired_at=at)
    audit_record(
        tenant=None,
        action="signing_key.rotated",
        target=key,
        actor=actor,
        data={"kid": key.kid, "signs_from": signs_from.isoformat(), "retired": retired},
    )
    return key


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: dt.datetime
    entitlement: Entitlement


def _record(device_id: int, **fields) -> None:
    """The device's last token: one UPDATE in steady state (update_or_create would lock and
    read first, in a transaction of its own, on every token)."""
    if EntitlementTokenRecord.objects.filter(device_id=device_id).update(**fields):
        return
    try:
        with transaction.atomic():
            EntitlementTokenRecord.objects.create(device_id=device_id, **fields)
    except IntegrityError:  # another worker's first token for this device won the insert
        EntitlementTokenRecord.objects.filter(device_id=device_id).update(**fields)


def entitlement_token_issue(
    *,
    tenant: Tenant,
    device_id: int,
    camera_ids: list[int] | None = None,
    at: dt.datetime | None = None,
) -> IssuedToken:
    """R14: the entitlement call's decision (R6, R10: the same service), signed. No token
    when no license is valid (NO_VALID_LICENSE)."""
    at = (at or timezone.now()).replace(microsecond=0)
    decision = entitlement_decide(tenant=tenant, device_id=device_id, camera_ids=camera_ids, at=at)
    if decision.code == rules.NO_VALID_LICENSE:
        raise Forbidden(
            _("This device has no valid license, so no entitlement token is issued."),
            code=rules.NO_VALID_LICENSE,
        )
    key = signing_key_current(at=at)
    expires_at = at + dt.timedelta(seconds=token_ttl())
    if decision.valid_until is not None and decision.valid_until < expires_at:
        expires_at = decision.valid_until
    # JWT times are whole seconds: round down, so `exp` never outlives a license.
    exp = int(expires_at.timestamp())
    jti = uuid.uuid4().hex
    claims = {
        "iss": settings.SITE_URL,
        "sub": str(device_id),
        "tenant": tenant.slug,
        "serial": decision.serial,
        "code": decision.code,
        "granted_cameras": decision.granted_cameras,
        "licenses_valid": decision.licenses_valid,
        "iat": int(at.timestamp()),
        "exp": exp,
        "jti": jti,
    }
    token = jwt.encode(claims, _private_key(key), algorithm=ALGORITHM, headers={"kid": key.kid})
    expires_at = dt.datetime.fromtimestamp(exp, tz=dt.UTC)
    _record(
        device_id, jti=jti, kid=key.kid, code=decision.code, issued_at=at, expires_at=expires_at
    )
    return IssuedToken(token=token, expires_at=expires_at, entitlement=decision)
