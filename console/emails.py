"""Templated emails (R13): rendered in each recipient's language, stored with the change,
delivered after it commits.

Any app may use this. A message is three templates under templates/ sharing a prefix:

    <prefix>_subject.txt   one line (newlines are removed)
    <prefix>.txt           the plain-text body
    <prefix>.html          the HTML body (may extend "emails/base.html")

Every template gets `site_url` (settings.SITE_URL, no trailing slash: write
`{{ site_url }}{% url 'dashboard' %}` for an absolute link) and `product_name`, besides the
caller's context.

    send_templated_email(
        recipients=tenant_recipients(tenant),  # [(address, language), …]
        template_prefix="emails/order_placed",
        context={"order": order},
    )
    send_templated_email(to=[app.email], template_prefix="emails/beta_status",
                         context={"application": app}, language=app.language)

One email per recipient, in that recipient's language (R13: the user's saved language, else
the tenant's: recipients_for_users). Rendering happens at once, once per language (so a
template error surfaces in the caller and in its tests); each email is stored in the
outbox (console.outbox) in the caller's transaction, so a rolled-back change sends nothing
and a committed one is never lost, and the worker delivers it after the commit, retrying
until the mail server takes it.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from console.models import Membership, OutboundEmail, Tenant, User
from console.outbox import outbound_emails_store

logger = logging.getLogger(__name__)

# Kept registered (console.tasks) for messages queued before the outbox existed.
EMAIL_SEND_TASK = "console.tasks.email_send"

Recipient = tuple[str, str | None]  # (address, language; None: the site's default)


def email_context(context: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"site_url": settings.SITE_URL, "product_name": _("Field Console"), **(context or {})}


def render_templated_parts(
    *, template_prefix: str, context: dict[str, Any] | None = None, language: str | None = None
) -> tuple[str, str, str]:
    """(subject, text, html) in `language` (default: the site's default language, not
    whatever the current request uses)."""
    with translation.override(language or settings.LANGUAGE_CODE):
        ctx = email_context(context)
        subject = " ".join(render_to_string(f"{template_prefix}_subject.txt", ctx).split())
        text = render_to_string(f"{template_prefix}.txt", ctx)
        html = render_to_string(f"{template_prefix}.html", ctx)
    return subject, text, html


def render_templated_email(
    *,
    to: Sequence[str],
    template_prefix: str,
    context: dict[str, Any] | None = None,
    language: str | None = None,
    from_email: str | None = None,
    reply_to: Sequence[str] | None = None,
) -> EmailMultiAlternatives:
    """Build the message (text with an HTML alternative) in `language`, without storing or
    sending it (previews, tests)."""
    subject, text, html = render_templated_parts(
        template_prefix=template_prefix, context=context, language=language
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=list(to),
        reply_to=list(reply_to) if reply_to else None,
    )
    message.attach_alternative(html, "text/html")
    return message


def message_from_payload(payload: dict[str, Any]) -> EmailMultiAlternatives:
    """A message queued by the task of earlier versions (console.tasks.email_send)."""
    message = EmailMultiAlternatives(
        subject=payload["subject"],
        body=payload["body"],
        from_email=payload.get("from_email") or settings.DEFAULT_FROM_EMAIL,
        to=payload["to"],
        reply_to=payload.get("reply_to") or None,
    )
    if payload.get("html"):
        message.attach_alternative(payload["html"], "text/html")
    return message


# --- recipients -------------------------------------------------------------------------------


def user_email_language(user: User, tenant: Tenant | None = None) -> str:
    """R13: the user's saved language, else the tenant's, else the site's default."""
    return user.language or (tenant.language if tenant else "") or settings.LANGUAGE_CODE


def recipients_for_users(users: Iterable[User], tenant: Tenant | None = None) -> list[Recipient]:
    """(address, language) of each user, in R13's language (user_email_language)."""
    return [(user.email, user_email_language(user, tenant)) for user in users]


def tenant_recipients(
    tenant: Tenant, *, roles: Sequence[str] = (Membership.Role.OWNER, Membership.Role.ADMIN)
) -> list[Recipient]:
    """The active members of `tenant` with one of `roles` (default: owners and admins, who
    hear of everything a customer must act on), each in their language."""
    users = (
        User.objects.filter(
            is_active=True, memberships__tenant=tenant, memberships__role__in=list(roles)
        )
        .order_by("email")
        .distinct()
        .only("email", "language")
    )
    return recipients_for_users(users, tenant)


def _one_per_recipient(recipients: Iterable[Recipient]) -> list[tuple[str, str]]:
    """Blank addresses dropped; an address given twice (in any case) kept once, as first
    given."""
    seen: set[str] = set()
    unique = []
    for address, language in recipients:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            unique.append((address, language or settings.LANGUAGE_CODE))
    return unique


# --- sending ----------------------------------------------------------------------------------


def send_templated_email(
    *,
    to: Sequence[str] = (),
    template_prefix: str,
    context: dict[str, Any] | None = None,
    language: str | None = None,
    recipients: Sequence[Recipient] = (),
    from_email: str | None = None,
    reply_to: Sequence[str] | None = None,
    dedup_key: str = "",
    on_commit: bool = True,
) -> list[OutboundEmail]:
    """Render now and store one email per recipient, delivered after the current
    transaction commits (at once outside one).

    `to` are addresses in `language`; `recipients` are (address, language) pairs, each in
    its own language. `dedup_key` names the notice (e.g. "order-placed:42"): the same
    notice to the same recipient is stored once, however often this is called.
    `on_commit` is kept for older callers: delivery always waits for the commit (the worker
    could not see an uncommitted row).

    Returns the emails built (an email skipped by `dedup_key` is among them, unsaved)."""
    del on_commit
    wanted = _one_per_recipient([*((address, language) for address in to), *recipients])
    if not wanted:
        return []
    rendered: dict[str, tuple[str, str, str]] = {}
    emails = []
    for address, lang in wanted:
        if lang not in rendered:
            rendered[lang] = render_templated_parts(
                template_prefix=template_prefix, context=context, language=lang
            )
        subject, text, html = rendered[lang]
        emails.append(
            OutboundEmail(
                to=address,
                language=lang,
                template=template_prefix[:100],
                subject=subject[:998],
                body_text=text,
                body_html=html,
                from_email=from_email or settings.DEFAULT_FROM_EMAIL,
                reply_to=list(reply_to or []),
                dedup_key=dedup_key,
            )
        )
    return outbound_emails_store(emails=emails)
