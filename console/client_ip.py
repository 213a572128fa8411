"""The client's address, one rule for every use (login lockouts, reset and signup limits).

`X-Forwarded-For` is written by whoever sends the request, so it is believed only when the
deployment says a proxy of its own stands in front (`BEHIND_PROXY=true`). Even then only
the right-most entry is taken: that proxy appends the address it saw, and everything to its
left came from the client and may be made up. Otherwise the address is the socket's,
REMOTE_ADDR."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass  # not an address: the proxy did not write it; fall back to the socket
    return request.META.get("REMOTE_ADDR", "") or ""
