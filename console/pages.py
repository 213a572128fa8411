"""What the console's app pages (devices, licensing, billing) share: who may change things,
service errors shown on forms, and one idempotency key per rendered order form.

The tenancy itself (logged in, member of a tenant, `request.tenant`) is console.views'
`member_required`, the decorator the dashboard and the shell's pages use.
"""

import secrets
from functools import wraps

from django.http import HttpResponseForbidden
from django.utils.translation import gettext as _

from console.views import (
    MANAGER_ROLES,
    form_errors_from,
    member_required,
    suspended_refusal,
    tenant_writable,
)

__all__ = [
    "can_change",
    "change_required",
    "forbidden",
    "form_errors_from",
    "form_key",
    "member_required",
]


def can_change(request) -> bool:
    """Owners and admins of an active tenant change things. Viewers, and every member of a
    suspended tenant (R9: only an active tenant can buy), see the pages read-only.

    What the pages show (forms, buttons); the suspension itself is enforced for every POST
    by member_required, before any view runs."""
    return request.membership.role in MANAGER_ROLES and tenant_writable(request)


def forbidden(request):
    if not tenant_writable(request):
        return suspended_refusal(request)
    return HttpResponseForbidden(_("Only owners and admins of the organisation can do this."))


def change_required(view):
    """After member_required: a POST from someone who may not change things is a 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST" and not can_change(request):
            return forbidden(request)
        return view(request, *args, **kwargs)

    return wrapper


def form_key() -> str:
    """A fresh Idempotency-Key for one rendered order form: submitting that form twice (a
    double click, a reload that re-posts) finds the first order instead of making two."""
    return "web-" + secrets.token_hex(16)
