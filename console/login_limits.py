"""Rate limits for people (CONTRACT "More settings": rate limits): console and admin logins
through django-axes, password reset and signup through small counters on the cache.

All counts live on Django's default cache: Redis when REDIS_URL is set, so every web
process shares them; the embedded default keeps them in its one process. Addresses come
from console.client_ip (X-Forwarded-For only when BEHIND_PROXY)."""

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_client_cache_keys, get_credentials, make_cache_key_list
from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

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


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: a locked-out login (console or admin)."""
    return too_many_requests(
        request,
        _(
            "Too many failed logins for this account or from your network. "
            "Try again in %(minutes)d minutes, or reset your password."
        )
        % {"minutes": WINDOW_SECONDS // 60},
    )


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
    from console.client_ip import client_ip

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
