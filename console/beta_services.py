"""The beta application workflow (R9): apply, review, approve or reject, confirm, withdraw.

    submitted ──► in_review ──► approved ──► confirmed (creates the active tenant)
        └────────────┴─────────────┴──► rejected   (by a reviewer)
        └────────────┴─────────────┴──► withdrawn  (by the applicant)

Every transition locks the application row, re-checks its state under the lock, writes an
AuditEvent (actor and reason) and emails the applicant after commit. A transition that is
not allowed from the current state raises InvalidTransition and changes nothing; two
reviewers acting at once are serialised by the lock, so the second one sees the new state
and fails instead of acting twice.
"""

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console.emails import send_templated_email
from console.errors import Conflict, Forbidden, InvalidInput, invalid_from_django
from console.models import BetaApplication, Tenant, User
from console.services import Actor, audit_record, tenant_create
from console.staff import REVIEWERS, staff_notice_recipients

State = BetaApplication.State
REASON_MAX_LENGTH = 2000
PRICE_MAX = Decimal("9999999999.99")  # contract_unit_price is DECIMAL(12, 2)


class InvalidTransition(Conflict):
    default_code = "INVALID_TRANSITION"


# action → (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start_review": (frozenset({State.SUBMITTED}), State.IN_REVIEW),
    "approve": (frozenset({State.IN_REVIEW}), State.APPROVED),
    "confirm": (frozenset({State.APPROVED}), State.CONFIRMED),
    "reject": (frozenset(BetaApplication.WITHDRAWABLE_STATES), State.REJECTED),
    "withdraw": (frozenset(BetaApplication.WITHDRAWABLE_STATES), State.WITHDRAWN),
}
# What a reviewer may do; withdrawing belongs to the applicant.
REVIEW_ACTIONS = ("start_review", "approve", "confirm", "reject")
ACTION_LABELS = {
    "start_review": gettext_lazy("Start review"),
    "approve": gettext_lazy("Approve"),
    "confirm": gettext_lazy("Confirm and create tenant"),
    "reject": gettext_lazy("Reject"),
    "withdraw": gettext_lazy("Withdraw"),
}
# A rejection tells the applicant why; the other reasons are for the audit trail.
REASON_REQUIRED = frozenset({"reject"})


def review_actions_for(application: BetaApplication) -> list[str]:
    """The reviewer actions allowed from the application's current state, in order."""
    return [a for a in REVIEW_ACTIONS if application.state in TRANSITIONS[a][0]]


def _clean_reason(action: str, reason: str | None) -> str:
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidInput(
            _("The reason is too long."),
            errors={"reason": [_("Use at most %(n)d characters.") % {"n": REASON_MAX_LENGTH}]},
        )
    if action in REASON_REQUIRED and not reason:
        raise InvalidInput(
            _("Give a reason: the applicant will read it."),
            errors={"reason": [_("This field is required.")]},
        )
    return reason


def _applicant_addresses(application: BetaApplication) -> list[str]:
    addresses = [application.applicant.email]
    if application.email and application.email.lower() != application.applicant.email.lower():
        addresses.append(application.email)
    return addresses


def _email_applicant(application: BetaApplication, *, reason: str = "") -> None:
    # R13: in the language the applicant chose for this application's emails (the tenant's
    # language once confirmed); one email per address. A state is entered once, so the
    # state names the notice: a repeated call stores nothing more.
    send_templated_email(
        to=_applicant_addresses(application),
        template_prefix="emails/beta_status",
        context={
            "application": application,
            "state": application.state,
            "reason": reason if application.state == State.REJECTED else "",
            "tenant": application.tenant,
        },
        language=application.language,
        dedup_key=f"beta-application:{application.pk}:{application.state}",
    )


def _email_reviewers(application: BetaApplication) -> None:
    # One email per reviewer, each in their own language.
    # R13: STAFF_NOTIFY_EMAILS when set, else the active staff of the Reviewers group.
    send_templated_email(
        recipients=staff_notice_recipients(REVIEWERS),
        template_prefix="emails/beta_new_application",
        context={"application": application},
        dedup_key=f"beta-application:{application.pk}:new",
    )


def beta_application_submit(
    *,
    applicant: User,
    company_name: str,
    contact_name: str,
    phone: str,
    email: str,
    industry: str,
    scenario: str,
    expected_devices: int,
    cameras_per_device: int,
    resolution: str,
    language: str = Tenant.Language.ZH_HANS,
) -> BetaApplication:
    """A new application, in state submitted; the applicant may have only one open."""
    application = BetaApplication(
        applicant=applicant,
        company_name=(company_name or "").strip(),
        contact_name=(contact_name or "").strip(),
        phone=(phone or "").strip(),
        email=(email or "").strip(),
        industry=industry,
        scenario=(scenario or "").strip(),
        expected_devices=expected_devices,
        cameras_per_device=cameras_per_device,
        resolution=resolution,
        language=language,
        state=State.SUBMITTED,
    )
    try:
        # The one-open-application constraint is checked below, under the insert.
        application.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise invalid_from_django(exc) from exc
    open_exists = Conflict(_("You already have an open beta application."), code="APPLICATION_OPEN")
    with transaction.atomic():
        if BetaApplication.objects.filter(
            applicant=applicant, state__in=BetaApplication.OPEN_STATES
        ).exists():
            raise open_exists
        try:
            with transaction.atomic():
                application.save()
        except IntegrityError as exc:  # a concurrent submit won the race
            raise open_exists from exc
        audit_record(
            tenant=None,
            action="beta_application.submitted",
            target=application,
            actor=applicant,
            data={"from": "", "to": State.SUBMITTED, "reason": ""},
        )
        _email_applicant(application)
        _email_reviewers(application)
    return application


def _transition(
    *,
    application: BetaApplication,
    action: str,
    actor: Actor,
    reason: str = "",
    check: Callable[[BetaApplication], None] | None = None,
    effect: Callable[[BetaApplication], dict[str, Any]] | None = None,
) -> BetaApplication:
    allowed_from, to_state = TRANSITIONS[action]
    reason = _clean_reason(action, reason)
    with transaction.atomic():
        # The lock serialises concurrent reviewers: whoever waits re-reads the state the
        # first one committed and fails the check below instead of acting twice.
        locked = (
            BetaApplication.objects.select_for_update()
            .select_related("applicant")
            .filter(pk=application.pk)
            .first()
        )
        if locked is None:
            raise InvalidTransition(_("This application no longer exists."), code="NOT_FOUND")
        if check is not None:
            check(locked)
        if locked.state not in allowed_from:
            raise InvalidTransition(
                _("“%(action)s” is not possible: the application is %(state)s.")
                % {"action": ACTION_LABELS[action], "state": locked.get_state_display()},
                extra={"state": locked.state, "action": action},
            )
        from_state = locked.state
        locked.state = to_state
        locked.state_changed_at = timezone.now()
        extra = effect(locked) if effect is not None else {}
        locked.save(update_fields=["state", "state_changed_at", "tenant"])
        audit_record(
            tenant=locked.tenant,
            action=f"beta_application.{to_state}",
            target=locked,
            actor=actor,
            data={"from": from_state, "to": to_state, "reason": reason, **extra},
        )
        _email_applicant(locked, reason=reason)
    # The caller's instance follows, so a page or an admin action shows the new state.
    application.state = locked.state
    application.state_changed_at = locked.state_changed_at
    application.tenant = locked.tenant
    return locked


def beta_application_start_review(
    *, application: BetaApplication, actor: Actor, reason: str = ""
) -> BetaApplication:
    return _transition(application=application, action="start_review", actor=actor, reason=reason)


def beta_application_approve(
    *, application: BetaApplication, actor: Actor, reason: str = ""
) -> BetaApplication:
    return _transition(application=application, action="approve", actor=actor, reason=reason)


def beta_application_reject(
    *, application: BetaApplication, actor: Actor, reason: str
) -> BetaApplication:
    return _transition(application=application, action="reject", actor=actor, reason=reason)


def beta_application_withdraw(
    *, application: BetaApplication, actor: User, reason: str = ""
) -> BetaApplication:
    """Only the applicant withdraws, and only before confirmation (R9)."""

    def only_applicant(locked: BetaApplication) -> None:
        if getattr(actor, "pk", None) != locked.applicant_id:
            raise Forbidden(_("Only the applicant can withdraw an application."))

    return _transition(
        application=application,
        action="withdraw",
        actor=actor,
        reason=reason,
        check=only_applicant,
    )


def clean_contract_unit_price(value: Any) -> Decimal:
    """R2: money is a Decimal with at most two places, positive."""
    error = InvalidInput(
        _("Enter a positive price with at most two decimal places."),
        errors={"contract_unit_price": [_("Enter a positive amount with at most two decimals.")]},
    )
    if isinstance(value, float):  # never money as float
        raise error
    try:
        price = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise error from exc
    if not price.is_finite() or price <= 0 or price > PRICE_MAX:
        raise error
    if price.as_tuple().exponent < -2:
        raise error
    return price.quantize(Decimal("0.01"))


def beta_application_confirm(
    *,
    application: BetaApplication,
    actor: Actor,
    slug: str,
    contract_unit_price: Decimal | str | None = None,
    reason: str = "",
) -> Tenant:
    """Confirm an approved application: create its tenant, active, with the negotiated
    price and the applicant as owner (R9) — in the same transaction as the state change.

    Without a negotiated price the tenant gets LICENSE_LIST_PRICE as it is now (R2)."""
    price = None if contract_unit_price is None else clean_contract_unit_price(contract_unit_price)
    slug = (slug or "").strip().lower()

    def create_tenant(locked: BetaApplication) -> dict[str, Any]:
        if Tenant.objects.filter(slug=slug).exists():
            raise Conflict(
                _("A tenant with this slug already exists."),
                code="SLUG_TAKEN",
                errors={"slug": [_("This slug is taken; choose another.")]},
            )
        try:
            tenant = tenant_create(
                name=locked.company_name,
                slug=slug,
                owner=locked.applicant,
                contract_unit_price=price,
                language=locked.language,
                actor=actor,
            )
        except Conflict as exc:  # taken between the check and the insert
            raise Conflict(
                exc.detail,
                code=exc.code,
                errors={"slug": [_("This slug is taken; choose another.")]},
            ) from exc
        locked.tenant = tenant
        return {"tenant": tenant.slug, "contract_unit_price": str(tenant.contract_unit_price)}

    confirmed = _transition(
        application=application,
        action="confirm",
        actor=actor,
        reason=reason,
        effect=create_tenant,
    )
    return confirmed.tenant
