"""Templated emails, rendered in the recipient's language and sent after commit.

Any app may use this. A message is three templates under templates/ sharing a prefix:

    <prefix>_subject.txt   one line (newlines are removed)
    <prefix>.txt           the plain-text body
    <prefix>.html          the HTML body (may extend "emails/base.html")

Every template gets `site_url` (settings.SITE_URL, no trailing slash: write
`{{ site_url }}{% url 'dashboard' %}` for an absolute link) and `product_name`, besides the
caller's context.

    send_templated_email(
        to=[user.email], template_prefix="emails/beta_status",
        context={"application": app}, language=app.language,
    )

Rendering happens at once (so a template error surfaces in the caller and in its tests);
sending is queued with transaction.on_commit, so a rolled-back change sends nothing, and goes
through the `console.tasks.email_send` Celery task, which retries a failed SMTP delivery. The
task is queued by name (console.celery.enqueue): console.tasks imports this module, never
the reverse.
Callers that need exactly-once bookkeeping of their own (reminders) can use
`render_templated_email` and send the message themselves.
"""

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from console.celery import enqueue

logger = logging.getLogger(__name__)

EMAIL_SEND_TASK = "console.tasks.email_send"


def email_context(context: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"site_url": settings.SITE_URL, "product_name": _("Field Console"), **(context or {})}


def render_templated_email(
    *,
    to: Sequence[str],
    template_prefix: str,
    context: dict[str, Any] | None = None,
    language: str | None = None,
    from_email: str | None = None,
    reply_to: Sequence[str] | None = None,
) -> EmailMultiAlternatives:
    """Build the message (text with an HTML alternative) in `language` (default: the
    site's default language, not whatever the current request uses)."""
    with translation.override(language or settings.LANGUAGE_CODE):
        ctx = email_context(context)
        subject = render_to_string(f"{template_prefix}_subject.txt", ctx)
        subject = " ".join(subject.split())
        text = render_to_string(f"{template_prefix}.txt", ctx)
        html = render_to_string(f"{template_prefix}.html", ctx)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=list(to),
        reply_to=list(reply_to) if reply_to else None,
    )
    message.attach_alternative(html, "text/html")
    return message


def message_payload(message: EmailMultiAlternatives) -> dict[str, Any]:
    """A JSON-serialisable form of a message, for the Celery task."""
    html = next((c for c, mime in message.alternatives if mime == "text/html"), None)
    return {
        "subject": message.subject,
        "body": message.body,
        "html": html,
        "from_email": message.from_email,
        "to": list(message.to),
        "reply_to": list(message.reply_to),
    }


def message_from_payload(payload: dict[str, Any]) -> EmailMultiAlternatives:
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


def _enqueue(payload: dict[str, Any]) -> None:
    try:
        enqueue(EMAIL_SEND_TASK, payload)
    except Exception:  # the broker is down: better late in the request than never
        logger.warning("email queue unavailable; sending %r inline", payload["subject"])
        message_from_payload(payload).send()


def send_templated_email(
    *,
    to: Sequence[str],
    template_prefix: str,
    context: dict[str, Any] | None = None,
    language: str | None = None,
    from_email: str | None = None,
    reply_to: Sequence[str] | None = None,
    on_commit: bool = True,
) -> EmailMultiAlternatives | None:
    """Render now, send after the current transaction commits (at once outside one).

    Returns the rendered message, or None when there is no recipient."""
    recipients = [address for address in to if address]
    if not recipients:
        return None
    message = render_templated_email(
        to=recipients,
        template_prefix=template_prefix,
        context=context,
        language=language,
        from_email=from_email,
        reply_to=reply_to,
    )
    payload = message_payload(message)
    if on_commit:
        # robust: a failing queue must not turn an already committed change into a 500.
        transaction.on_commit(lambda: _enqueue(payload), robust=True)
    else:
        _enqueue(payload)
    return message
