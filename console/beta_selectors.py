"""Reads for beta applications (R9)."""

from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from console.models import AuditEvent, BetaApplication, User

REVIEWERS_GROUP = "Reviewers"


def beta_application_list_for(*, applicant: User) -> QuerySet[BetaApplication]:
    return BetaApplication.objects.filter(applicant=applicant).order_by("-created_at", "-id")


def beta_application_current(*, applicant: User) -> BetaApplication | None:
    """The applicant's open application, else their latest closed one, else None."""
    applications = beta_application_list_for(applicant=applicant)
    return (
        applications.filter(state__in=BetaApplication.OPEN_STATES).first() or applications.first()
    )


def beta_application_audit_trail(application: BetaApplication) -> QuerySet[AuditEvent]:
    return (
        AuditEvent.objects.filter(
            target_type=BetaApplication._meta.label_lower, target_id=str(application.pk)
        )
        .select_related("actor")
        .order_by("created_at", "id")
    )


def beta_reviewers() -> QuerySet[User]:
    """Who hears of a new application: active members of the Reviewers group and active
    staff superusers."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name=REVIEWERS_GROUP) | Q(is_superuser=True, is_staff=True))
        .distinct()
        .order_by("email")
    )


def reviewers_group() -> Group | None:
    return Group.objects.filter(name=REVIEWERS_GROUP).first()
