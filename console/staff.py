"""Staff roles (CONTRACT.md "Staff roles") and who hears of staff notices (R13).

Two groups, so that no daily task needs a superuser:

- `Reviewers`: beta applications (view, review, approve, reject, confirm), tenants (view,
  suspend and reactivate with a reason), audit events (view), team invitations and extra
  notification recipients (view);
- `Billing`: orders (view, confirm payment, cancel), payments (view), refund requests (view,
  approve, reject with a reason), tenant totals, audit events (view), extra notification
  recipients (view).

A migration makes the groups; `staff_groups_ensure` runs again on every post_migrate, so a
flushed test database (and a database migrated before a permission was added here) has
them too. It only adds: a permission an operator gave a group by hand is left alone.

The actions that are more than viewing have their own permissions, created with the groups
(they are not in the models' Meta, so they need no schema migration):
`console.review_betaapplication`, `console.suspend_tenant`, `billing.confirm_payment`,
`billing.cancel_order`, `billing.decide_refund`.
"""

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Q

from console.emails import Recipient, recipients_for_users, user_email_language
from console.models import User

REVIEWERS = "Reviewers"
BILLING = "Billing"

# (app_label, model, codename, name) of the permissions that are not Django's defaults.
CUSTOM_PERMISSIONS = [
    (
        "console",
        "betaapplication",
        "review_betaapplication",
        "Can review, approve, reject and confirm applications",
    ),
    ("console", "tenant", "suspend_tenant", "Can suspend and reactivate tenants"),
    ("billing", "order", "confirm_payment", "Can confirm an order's payment"),
    ("billing", "order", "cancel_order", "Can cancel an order pending payment"),
    ("billing", "refundrequest", "decide_refund", "Can approve and reject refund requests"),
]

# group → [(app_label, model, codename)]
GROUP_PERMISSIONS: dict[str, list[tuple[str, str, str]]] = {
    REVIEWERS: [
        ("console", "betaapplication", "view_betaapplication"),
        # The reviewer notes; the state moves through the review actions only.
        ("console", "betaapplication", "change_betaapplication"),
        ("console", "betaapplication", "review_betaapplication"),
        ("console", "tenant", "view_tenant"),
        ("console", "tenant", "suspend_tenant"),
        ("console", "auditevent", "view_auditevent"),
        # The outbox (R13): see what was sent to applicants and customers, retry a failure.
        ("console", "outboundemail", "view_outboundemail"),
        ("console", "outboundemail", "change_outboundemail"),
        # A tenant's team invitations and extra notice recipients, read-only.
        ("console", "invitation", "view_invitation"),
        ("console", "notificationrecipient", "view_notificationrecipient"),
    ],
    BILLING: [
        ("billing", "order", "view_order"),
        ("billing", "order", "confirm_payment"),
        ("billing", "order", "cancel_order"),
        ("billing", "payment", "view_payment"),
        ("billing", "refundrequest", "view_refundrequest"),
        ("billing", "refundrequest", "decide_refund"),
        ("billing", "tenanttotals", "view_tenanttotals"),
        ("console", "auditevent", "view_auditevent"),
        ("console", "outboundemail", "view_outboundemail"),
        ("console", "outboundemail", "change_outboundemail"),
        # Who receives a tenant's order and payment emails besides its owners and admins.
        ("console", "notificationrecipient", "view_notificationrecipient"),
    ],
}

DEFAULT_ACTIONS = ("add", "change", "delete", "view")


def _permission_name(apps, app_label: str, model: str, codename: str) -> str:
    for label, model_name, code, name in CUSTOM_PERMISSIONS:
        if (label, model_name, code) == (app_label, model, codename):
            return name
    action = codename.split("_", 1)[0]
    assert action in DEFAULT_ACTIONS, codename
    verbose = apps.get_model(app_label, model)._meta.verbose_name_raw
    return f"Can {action} {verbose}"  # Django's own wording, as create_permissions writes it


def staff_groups_ensure(apps, using: str = "default") -> None:
    """Create the staff groups and the permissions they hold, where missing.

    `apps` is a migration state's registry (a migration or post_migrate's `apps`): Django
    creates a model's permissions after all migrations, so the ones needed here are made
    here, with the names Django would give them; Django then finds them and moves on."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group_name, wanted in GROUP_PERMISSIONS.items():
        perms = []
        for app_label, model, codename in wanted:
            ctype, _ = ContentType.objects.using(using).get_or_create(
                app_label=app_label, model=model
            )
            perm, _ = Permission.objects.using(using).get_or_create(
                content_type=ctype,
                codename=codename,
                defaults={"name": _permission_name(apps, app_label, model, codename)},
            )
            perms.append(perm)
        group, _ = Group.objects.using(using).get_or_create(name=group_name)
        group.permissions.add(*perms)


def ensure_after_migrate(sender, app_config=None, using="default", apps=None, **kwargs) -> None:
    """post_migrate receiver (connected once, for the console app)."""
    if apps is None:  # `flush` sends the signal without a migration state
        from django.apps import apps as global_apps

        apps = global_apps
    try:
        apps.get_model("billing", "Order")
    except LookupError:  # a partial migrate (`migrate console 0001`): billing isn't there yet
        return
    staff_groups_ensure(apps, using=using)


def staff_group_members(group: str) -> Iterable[User]:
    """Active staff users of `group`, and active superusers (they may do everything)."""
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(Q(groups__name=group) | Q(is_superuser=True))
        .distinct()
        .order_by("email")
    )


def staff_notice_recipients(group: str) -> list[Recipient]:
    """Who hears of a staff notice (R13), as (address, language): `STAFF_NOTIFY_EMAILS`
    when set (each in its user's language when the address is a user's, else the site's),
    otherwise the active staff users of the group that acts on it."""
    addresses = [a.strip() for a in settings.STAFF_NOTIFY_EMAILS if a.strip()]
    if not addresses:
        return recipients_for_users(staff_group_members(group))
    users = {
        user.email: user
        for user in User.objects.filter(email__in=[a.lower() for a in addresses]).only(
            "email", "language"
        )
    }
    return [
        (address, user_email_language(users[address.lower()], None))
        if address.lower() in users
        else (address, None)
        for address in addresses
    ]
