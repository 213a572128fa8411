"""Sign-up that does not tell whether an address has an account (issue 13).

Both answers are the same page: "check your email". A new address gets a link that creates
the account once opened; an address that already has one gets a notice to its owner
instead ("someone tried to sign up with your address"). Either way the password is hashed
and one email is stored, so the time taken tells nothing either.

Nothing is stored until the link is used: the link carries the sign-up itself (address,
name, password hash, language), encrypted with a key derived from SECRET_KEY, so the hash
is never readable from a mailbox and a pending sign-up needs no table or cache."""

import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.urls import reverse

from console.emails import send_templated_email
from console.models import User

# How long a sign-up link works.
LINK_TTL_SECONDS = 2 * 24 * 3600
_HKDF_INFO = b"field-console sign-up links"


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def signup_request(*, email: str, full_name: str, password: str, language: str) -> None:
    """Email a new address its link, or an existing account's owner a notice."""
    password_hash = make_password(password)  # either way: the same work for both answers
    existing = User.objects.filter(email__iexact=email).first()
    if existing is None:
        payload = {"e": email, "n": full_name, "p": password_hash, "l": language}
        token = _fernet().encrypt(json.dumps(payload).encode()).decode()
        send_templated_email(
            to=[email],
            template_prefix="emails/signup_confirm",
            context={
                "full_name": full_name,
                "link": settings.SITE_URL + reverse("signup-confirm", args=[token]),
                "days": LINK_TTL_SECONDS // 86400,
            },
            language=language or None,
        )
    elif existing.is_active:
        send_templated_email(
            recipients=[(existing.email, existing.language or language or None)],
            template_prefix="emails/signup_existing",
            context={"user": existing},
        )


def signup_read(token: str) -> dict | None:
    """The sign-up a link carries, or None when it is not ours or has expired."""
    try:
        data = json.loads(_fernet().decrypt(token.encode(), ttl=LINK_TTL_SECONDS))
    except (InvalidToken, ValueError):
        return None
    return {
        "email": data["e"],
        "full_name": data["n"],
        "password_hash": data["p"],
        "language": data["l"],
    }


def signup_confirm(*, signup: dict) -> User | None:
    """Create the account a link carries; None when the address has one by now (the link
    was used already, or the address signed up another way)."""
    if User.objects.filter(email__iexact=signup["email"]).exists():
        return None
    user = User(email=signup["email"], full_name=signup["full_name"], language=signup["language"])
    user.password = signup["password_hash"]
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # the same link opened twice at once
        return None
    return user
