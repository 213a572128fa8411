#!/usr/bin/env python3
"""Reference verifier of Field Console entitlement tokens (R14), for gateway vendors.

    python tools/verify_token.py TOKEN --jwks FILE_OR_URL [--issuer URL] [--device ID]

Verifies a token offline against a JWKS (a file, or the console's
https://<console>/.well-known/jwks.json): EdDSA (Ed25519) signature, `exp`, `iat`, and the
issuer and device when given. When the token names a key id (`kid`) the JWKS does not hold,
the JWKS is fetched again once (the console publishes a new key before it signs with it).
Prints the granted cameras and the seconds left; exits 0 when the token is good, 1 when it is
refused (the reason on stderr), 2 on a usage error.

Depends on PyJWT and cryptography only. The gateway's loop: ask for a token
(POST /api/v1/devices/{id}/entitlement-token), stream `granted_cameras`, ask again at half
the remaining time, keep streaming on the cached token while the console is unreachable,
and stop at `exp`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHM = "EdDSA"
CLAIMS = ("iss", "sub", "tenant", "serial", "code", "granted_cameras", "iat", "exp", "jti")


class TokenRefused(Exception):
    """The token must not be used; the message says why."""


def load_jwks(source: str, *, timeout: float = 10) -> dict:
    """A JWKS from a file path or an http(s) URL."""
    if source.startswith(("https://", "http://")):
        # http(s) only: the scheme was checked above.
        request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return json.loads(answer.read(1_000_000))
    return json.loads(Path(source).read_text(encoding="utf-8"))


@dataclass
class KeySet:
    """The published keys, fetched again (once per verification) on an unknown key id."""

    fetch: Callable[[], dict]
    jwks: dict | None = None

    def key(self, kid: str, *, refetch: bool = True):
        if self.jwks is None:
            self.jwks = self.fetch()
        for entry in self.jwks.get("keys", []):
            if entry.get("kid") == kid:
                if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                    raise TokenRefused(f"key {kid} is not an Ed25519 key")
                return jwt.PyJWK(entry, algorithm=ALGORITHM).key
        if refetch:
            self.jwks = self.fetch()
            return self.key(kid, refetch=False)
        raise TokenRefused(f"unknown signing key {kid!r} (not in the published JWKS)")


def verify(
    token: str,
    keys: KeySet,
    *,
    issuer: str | None = None,
    device: str | None = None,
    now: float | None = None,
    leeway: float = 0,
) -> dict:
    """The token's claims when its signature, times, issuer and device are good."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenRefused(f"not a token: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenRefused(f"unexpected algorithm {header.get('alg')!r}; only EdDSA is accepted")
    kid = header.get("kid")
    if not kid:
        raise TokenRefused("the token names no signing key (kid)")
    key = keys.key(kid)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": list(CLAIMS), "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise TokenRefused(
            "bad signature: the token was changed or not signed by this key"
        ) from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenRefused(f"issued by another console: {exc}") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenRefused(f"invalid token: {exc}") from exc
    now = time.time() if now is None else now
    if claims["exp"] <= now - leeway:
        raise TokenRefused(f"expired {int(now - claims['exp'])} s ago")
    if claims["iat"] > now + leeway + 60:
        raise TokenRefused("issued in the future: check the gateway's clock")
    if device is not None and claims["sub"] != str(device):
        raise TokenRefused(f"issued for device {claims['sub']}, not {device}")
    return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("token", help="the compact JWS, or - to read it from stdin")
    parser.add_argument("--jwks", required=True, help="a JWKS file or the console's JWKS URL")
    parser.add_argument("--issuer", help="the console's URL the token must name (iss)")
    parser.add_argument("--device", help="the device id the token must be for (sub)")
    args = parser.parse_args(argv)
    token = sys.stdin.read().strip() if args.token == "-" else args.token.strip()
    try:
        claims = verify(
            token,
            KeySet(fetch=lambda: load_jwks(args.jwks)),
            issuer=args.issuer,
            device=args.device,
        )
    except TokenRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"refused: cannot read the JWKS: {exc}", file=sys.stderr)
        return 1
    left = int(claims["exp"] - time.time())
    print(
        json.dumps(
            {
                "code": claims["code"],
                "device": claims["sub"],
                "serial": claims["serial"],
                "granted_cameras": claims["granted_cameras"],
                "seconds_left": left,
                "renew_in_seconds": max(left // 2, 0),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
