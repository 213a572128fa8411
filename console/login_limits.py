"""Rate limits for people (CONTRACT "More settings": rate limits): console and admin logins
through django-axes, password reset and signup through small counters on the cache.

All counts live on Django's default cache: Redis when REDIS_URL is set, so every web
process shares them; the embedded default keeps them in its one process. Addresses come
from console.client_ip (X-Forwarded-For only when BEHIND_PROXY)."""

import functools

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_client_cache_keys, get_credentials, make_cache_key_list
from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from console.client_ip import client_ip

# Password reset and signup (per 15 minutes): an address asked for, and a client address.
# Counted whether or not the address has an account, so a 429 tells nothing about it.
WINDOW_SECONDS = 15 * 60
PER_EMAIL = 3
PER_CLIENT = 10


def login_username(request, credentials) -> str:
    """The account a login names, as axes counts it: lower-cased as stored, whichever form
    sent it (the admin's login form does not lower-case it), and prefixed, because axes
    keys a count by the bare value: an "account" named like an address would otherwise
    count against that address."""
    username = (credentials or {}).get("username")
    if username is None and request is not None:
        username = request.POST.get("username")
    return _account(username or "")


def _account(username: str) -> str:
    return "account:" + username.strip().lower()


def _address_key(ip_address: str) -> str:
    """Axes' cache key for the failures of one client address."""
    return make_cache_key_list([{"ip_address": ip_address}])[0]


class LoginLockoutHandler(AxesCacheHandler):
    """Axes' cache handler with a limit per parameter: LOGIN_FAILURES_PER_ACCOUNT for an
    account, LOGIN_FAILURES_PER_ADDRESS for a client address (axes has one limit for all).
    Its cache keys come in AXES_LOCKOUT_PARAMETERS' order: the account's, then the
    address's."""

    def _limits(self):
        return (settings.LOGIN_FAILURES_PER_ACCOUNT, settings.LOGIN_FAILURES_PER_ADDRESS)

    def is_locked(self, request, credentials=None) -> bool:
        keys = get_client_cache_keys(request, credentials)
        counts = self.cache.get_many(keys)
        return any(
            counts.get(key, 0) >= limit for key, limit in zip(keys, self._limits(), strict=True)
        )

    def get_failures(self, request, credentials=None) -> int:
        return max(self.cache.get_many(get_client_cache_keys(request, credentials)).values() or [0])

    def user_logged_in(self, sender, request, user, **kwargs):
        """A good login clears its account's count only: clearing the address's too would
        let one client guess at many accounts, logging into its own between guesses."""
        account_key = get_client_cache_keys(request, get_credentials(user.get_username()))[0]
        self.cache.delete(account_key)


def too_many_requests(request, message: str):
    """The 429 page: the admin's look under /admin/, the console's elsewhere."""
    context = {"message": message, "retry_minutes": WINDOW_SECONDS // 60}
    if request.path.startswith(reverse("admin:index")):
        template = "admin/too_many_requests.html"
        context.update(admin.site.each_context(request))
    else:
        template = "registration/too_many_requests.html"
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(WINDOW_SECONDS)
    return response


def lockout_message() -> str:
    return _(
        "Too many failed logins for this account or from your network. "
        "Try again in %(minutes)d minutes, or reset your password."
    ) % {"minutes": WINDOW_SECONDS // 60}


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: a locked-out login (console or admin)."""
    return too_many_requests(request, lockout_message())


class LockedOutAddressMiddleware:
    """A login posted from a locked-out address (LOGIN_FAILURES_PER_ADDRESS failures) is
    answered here, before sessions, CSRF, authentication and the page templates: one cache
    read and a small standalone page. A flood of bad logins from one address then costs the
    web workers the gateways share almost nothing once the address is locked (issue 13:
    the entitlement call's p99 during such a flood). Everything else (an account's lockout,
    the first failures) goes on to axes as before; the count is the one axes keeps."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.login_paths: frozenset[str] | None = None

    def __call__(self, request):
        if (
            request.method == "POST"
            and request.path in self._login_paths()
            and address_locked_out(request)
        ):
            return address_locked_out_response(request)
        return self.get_response(request)

    def _login_paths(self) -> frozenset[str]:
        # Resolved on first use: the URL conf is not loaded when middleware is built.
        if self.login_paths is None:
            self.login_paths = frozenset((reverse("login"), reverse("admin:login")))
        return self.login_paths


def address_locked_out(request) -> bool:
    """The client's address has reached LOGIN_FAILURES_PER_ADDRESS (axes' own count)."""
    failures = cache.get(_address_key(client_ip(request)), 0)
    return failures >= settings.LOGIN_FAILURES_PER_ADDRESS


@functools.lru_cache(maxsize=32)
def address_locked_out_page(language: str, login_url: str) -> str:
    """The page never changes for a language and a login page: rendered once per process."""
    with translation.override(language):
        return render_to_string(
            "registration/address_locked_out.html",
            {
                "message": lockout_message(),
                "LANGUAGE_CODE": language,
                "login_url": login_url,
                "reset_url": reverse("password_reset"),
            },
        )


def address_locked_out_response(request) -> HttpResponse:
    """The 429 of LockedOutAddressMiddleware, in the visitor's language (cookie or
    Accept-Language: no session has been read yet)."""
    language = translation.get_language_from_request(request)
    body = address_locked_out_page(language, request.path)
    response = HttpResponse(body, status=429)
    response["Retry-After"] = str(WINDOW_SECONDS)
    response["Content-Language"] = language
    response["Cache-Control"] = "no-store"
    return response


def _hit(key: str, limit: int) -> bool:
    """Count one request against `key` in a fixed window; True while within `limit`."""
    if cache.add(key, 1, WINDOW_SECONDS):
        return True
    try:
        return cache.incr(key) <= limit
    except ValueError:  # the window ended between add and incr
        cache.add(key, 1, WINDOW_SECONDS)
        return True


def request_allowed(request, *, scope: str, email: str | None = None) -> bool:
    """One more `scope` ("reset", "signup") request from this client, for `email` when
    given; False once either count is over its limit. Both counts go up either way."""
    allowed = _hit(f"limit:{scope}:ip:{client_ip(request)}", PER_CLIENT)
    if email:
        allowed = _hit(f"limit:{scope}:email:{email.strip().lower()}", PER_EMAIL) and allowed
    return allowed


def limits_reset(*, ip_address: str, emails=()) -> None:
    """Forget the counts of one client address (and accounts): tests, and staff helping a
    customer locked out by someone else."""
    keys = make_cache_key_list(
        [{"ip_address": ip_address}, *({"username": _account(email)} for email in emails)]
    )
    keys += [f"limit:{scope}:ip:{ip_address}" for scope in ("reset", "signup")]
    keys += [
        f"limit:{scope}:email:{email.strip().lower()}"
        for scope in ("reset", "signup")
        for email in emails
    ]
    cache.delete_many(keys)
