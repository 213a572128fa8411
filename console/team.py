"""The tenant's team: invitations by email, members' roles, removing members.

Owners manage the team (the pages check the role). Every change to who is an owner takes
the tenant's row lock first, so two owners demoting or removing each other at the same
moment are serialised and the second one meets the last-owner rule instead of leaving the
tenant without an owner.

An invitation link is `signing.dumps` of the invitation's id and nonce, timestamped and
checked with `max_age` (INVITATION_MAX_AGE); the row's status makes it single-use, and a
resend draws a new nonce, so only the latest link of a pending invitation works.
"""

import datetime as dt
import secrets

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from console.emails import send_templated_email
from console.errors import Conflict, InvalidInput
from console.models import Invitation, Membership, Tenant, User
from console.services import (
    Actor,
    audit_record,
    tenant_lock,
    tenant_require_active,
    user_get_or_create,
)

INVITATION_MAX_AGE = dt.timedelta(days=7)
_SALT = "console.team.invitation"


def _lock_tenant(tenant_id: int) -> Tenant:
    """The tenant, locked for the caller's transaction (the lock a suspension takes), and
    active: a suspended tenant's team does not change (R9), whichever page or command asks."""
    locked = tenant_lock(tenant_id)
    tenant_require_active(locked)
    return locked


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise InvalidInput(_("Unknown role."), errors={"role": [_("Choose a role.")]})


# --- invitations ------------------------------------------------------------------------------


def invitation_token(invitation: Invitation) -> str:
    return signing.dumps({"i": invitation.pk, "n": invitation.nonce}, salt=_SALT, compress=True)


def invitation_url(invitation: Invitation) -> str:
    return settings.SITE_URL + reverse("invitation-accept", args=[invitation_token(invitation)])


def invitation_read(token: str) -> Invitation | None:
    """The pending invitation a link names, or None when the link is forged, expired
    (INVITATION_MAX_AGE after it was sent), used, revoked or superseded by a resend."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=INVITATION_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(payload, dict):
        return None
    invitation = (
        Invitation.objects.select_related("tenant")
        .filter(pk=payload.get("i"), nonce=payload.get("n"), status=Invitation.Status.PENDING)
        .first()
    )
    return invitation


def _send_invitation(invitation: Invitation, *, language: str) -> None:
    send_templated_email(
        to=[invitation.email],
        language=language,
        template_prefix="emails/team_invitation",
        context={
            "invitation": invitation,
            "tenant": invitation.tenant,
            "inviter": invitation.invited_by,
            "accept_url": invitation_url(invitation),
            "days": INVITATION_MAX_AGE.days,
        },
    )


@transaction.atomic
def invitation_create(*, tenant: Tenant, email: str, role: str, actor: Actor = None) -> Invitation:
    email = User.objects.normalize_email((email or "").strip()).lower()
    _check_role(role)
    if not email:
        raise InvalidInput(_("Enter an email address."), errors={"email": [_("Required.")]})
    tenant = _lock_tenant(tenant.pk)
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise InvalidInput(
            _("%(email)s is already a member.") % {"email": email},
            errors={"email": [_("Already a member of this organisation.")]},
        )
    if Invitation.objects.filter(
        tenant=tenant, email__iexact=email, status=Invitation.Status.PENDING
    ).exists():
        raise InvalidInput(
            _("%(email)s is already invited.") % {"email": email},
            errors={"email": [_("Already invited: resend the invitation from the list.")]},
        )
    inviter = actor if isinstance(actor, User) else None
    now = timezone.now()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                tenant=tenant,
                email=email,
                role=role,
                nonce=secrets.token_hex(16),
                invited_by=inviter,
                created_at=now,
                sent_at=now,
            )
    except IntegrityError as exc:  # the same address invited by another owner just now
        raise Conflict(_("%(email)s is already invited.") % {"email": email}) from exc
    audit_record(
        tenant=tenant,
        action="invitation.created",
        target=invitation,
        actor=actor,
        data={"email": email, "role": role},
    )
    _send_invitation(invitation, language=tenant.language)
    return invitation


def _lock_pending(tenant: Tenant, invitation: Invitation) -> Invitation:
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk, tenant=tenant).first()
    if locked is None or locked.status != Invitation.Status.PENDING:
        raise Conflict(_("This invitation is no longer pending."), code="INVITATION_NOT_PENDING")
    return locked


@transaction.atomic
def invitation_resend(*, tenant: Tenant, invitation: Invitation, actor: Actor = None) -> Invitation:
    """A new link (a new nonce: earlier links stop working), valid for INVITATION_MAX_AGE."""
    tenant = _lock_tenant(tenant.pk)
    invitation = _lock_pending(tenant, invitation)
    invitation.nonce = secrets.token_hex(16)
    invitation.sent_at = timezone.now()
    invitation.save(update_fields=["nonce", "sent_at"])
    audit_record(
        tenant=tenant,
        action="invitation.resent",
        target=invitation,
        actor=actor,
        data={"email": invitation.email},
    )
    _send_invitation(invitation, language=tenant.language)
    return invitation


@transaction.atomic
def invitation_revoke(*, tenant: Tenant, invitation: Invitation, actor: Actor = None) -> Invitation:
    tenant = _lock_tenant(tenant.pk)
    invitation = _lock_pending(tenant, invitation)
    invitation.status = Invitation.Status.REVOKED
    invitation.save(update_fields=["status"])
    audit_record(
        tenant=tenant,
        action="invitation.revoked",
        target=invitation,
        actor=actor,
        data={"email": invitation.email},
    )
    return invitation


@transaction.atomic
def invitation_accept(
    *,
    invitation: Invitation,
    user: User | None = None,
    password: str | None = None,
    full_name: str = "",
    language: str = "",
) -> Membership:
    """Join the invitation's tenant: as `user` (logged in, with the invited address), or as
    a new account made now with `password`. Single use: the row is locked and must still be
    pending, so a link used twice at once makes one membership.

    A suspended tenant's console is read-only (R9): joining it is refused (403
    TENANT_SUSPENDED) and nothing is written, so the invitation stays pending for after the
    reactivation. The tenant's row is locked first (the lock a suspension takes), so an
    accept and a suspension at the same moment are serialised."""
    tenant = _lock_tenant(invitation.tenant_id)
    locked = Invitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None or locked.status != Invitation.Status.PENDING:
        raise Conflict(_("This invitation was already used or revoked."), code="INVITATION_USED")
    if user is None:
        if User.objects.filter(email__iexact=locked.email).exists():
            raise Conflict(
                _("An account with this address exists: log in to accept."),
                code="ACCOUNT_EXISTS",
            )
        user = user_get_or_create(email=locked.email, password=password, full_name=full_name)
        if language and language in dict(settings.LANGUAGES):
            user.language = language
            user.save(update_fields=["language"])
    elif user.email.lower() != locked.email.lower():
        raise Conflict(
            _("This invitation is for %(email)s; log in with that address to accept it.")
            % {"email": locked.email},
            code="INVITATION_OTHER_ADDRESS",
        )
    membership, created = Membership.objects.get_or_create(
        user=user, tenant=tenant, defaults={"role": locked.role}
    )
    locked.status = Invitation.Status.ACCEPTED
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["status", "accepted_at", "accepted_by"])
    audit_record(
        tenant=tenant,
        action="invitation.accepted",
        target=locked,
        actor=user,
        data={"email": locked.email, "role": membership.role, "joined": created},
    )
    if created:
        audit_record(
            tenant=tenant,
            action="membership.created",
            target=membership,
            actor=user,
            data={"user": user.email, "role": membership.role},
        )
    return membership


# --- members ----------------------------------------------------------------------------------


def _lock_member(tenant: Tenant, membership: Membership) -> Membership:
    return (
        Membership.objects.select_for_update()
        .select_related("user")
        .get(pk=membership.pk, tenant=tenant)
    )


def _refuse_last_owner(tenant: Tenant, membership: Membership) -> None:
    others = (
        Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )
    if membership.role == Membership.Role.OWNER and not others:
        raise Conflict(
            _("An organisation keeps at least one owner: make another member an owner first."),
            code="LAST_OWNER",
        )


@transaction.atomic
def member_set_role(
    *, tenant: Tenant, membership: Membership, role: str, actor: Actor = None
) -> Membership:
    _check_role(role)
    # The tenant lock serialises every owner change of this tenant (see the module's doc).
    tenant = _lock_tenant(tenant.pk)
    membership = _lock_member(tenant, membership)
    if membership.role == role:
        return membership
    if role != Membership.Role.OWNER:
        _refuse_last_owner(tenant, membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        tenant=tenant,
        action="membership.role_changed",
        target=membership,
        actor=actor,
        data={"user": membership.user.email, "from": old, "to": role},
    )
    return membership


@transaction.atomic
def member_remove(*, tenant: Tenant, membership: Membership, actor: Actor = None) -> None:
    tenant = _lock_tenant(tenant.pk)
    membership = _lock_member(tenant, membership)
    _refuse_last_owner(tenant, membership)
    audit_record(
        tenant=tenant,
        action="membership.removed",
        target=membership,
        actor=actor,
        data={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()
