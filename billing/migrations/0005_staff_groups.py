"""The staff groups `Reviewers` and `Billing` with their permissions (CONTRACT.md "Staff
roles"), so that no daily task needs a superuser.

Django creates a model's permissions only after all migrations (post_migrate), so this
migration makes the ones the groups need itself, with the names Django gives them; the
actions that are more than viewing get their own permissions. The lists are frozen here as
they were when the groups were made; console.staff ensures the current lists after every
migrate. `Reviewers` already exists (console 0003): it gains what it lacked.
"""

from django.db import migrations

CUSTOM = {
    ("console", "betaapplication", "review_betaapplication"): (
        "Can review, approve, reject and confirm applications"
    ),
    ("console", "tenant", "suspend_tenant"): "Can suspend and reactivate tenants",
    ("billing", "order", "confirm_payment"): "Can confirm an order's payment",
    ("billing", "order", "cancel_order"): "Can cancel an order pending payment",
    ("billing", "refundrequest", "decide_refund"): "Can approve and reject refund requests",
}
GROUPS = {
    "Reviewers": [
        ("console", "betaapplication", "view_betaapplication"),
        ("console", "betaapplication", "change_betaapplication"),
        ("console", "betaapplication", "review_betaapplication"),
        ("console", "tenant", "view_tenant"),
        ("console", "tenant", "suspend_tenant"),
        ("console", "auditevent", "view_auditevent"),
    ],
    "Billing": [
        ("billing", "order", "view_order"),
        ("billing", "order", "confirm_payment"),
        ("billing", "order", "cancel_order"),
        ("billing", "payment", "view_payment"),
        ("billing", "refundrequest", "view_refundrequest"),
        ("billing", "refundrequest", "decide_refund"),
        ("billing", "tenanttotals", "view_tenanttotals"),
        ("console", "auditevent", "view_auditevent"),
    ],
}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    for group_name, wanted in GROUPS.items():
        perms = []
        for app_label, model, codename in wanted:
            ctype, _ = ContentType.objects.using(db).get_or_create(app_label=app_label, model=model)
            name = CUSTOM.get((app_label, model, codename))
            if name is None:
                verbose = apps.get_model(app_label, model)._meta.verbose_name_raw
                name = f"Can {codename.split('_', 1)[0]} {verbose}"
            perms.append(
                Permission.objects.using(db).get_or_create(
                    content_type=ctype, codename=codename, defaults={"name": name}
                )[0]
            )
        group, _ = Group.objects.using(db).get_or_create(name=group_name)
        group.permissions.add(*perms)


def remove_groups(apps, schema_editor):
    db = schema_editor.connection.alias
    apps.get_model("auth", "Group").objects.using(db).filter(name="Billing").delete()
    apps.get_model("auth", "Permission").objects.using(db).filter(
        codename__in=[
            codename for (_a, _m, codename) in CUSTOM if codename != "review_betaapplication"
        ]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_order_transfer_reference_unique"),
        ("console", "0005_tenant_price_from_list_price"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
