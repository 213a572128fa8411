"""The "Reviewers" group (R9): staff in it review beta applications in the admin.

It gets just what that needs: see applications, edit their reviewer notes (change), and run
the state transitions (review_betaapplication). Permission rows are normally created by the
post_migrate signal, after all migrations, so this migration makes the ones it needs itself;
post_migrate then finds them and leaves them alone.
"""

from django.db import migrations

GROUP = "Reviewers"
PERMISSIONS = [
    ("view_betaapplication", "Can view beta application"),
    ("change_betaapplication", "Can change beta application"),
    ("review_betaapplication", "Can review, approve, reject and confirm applications"),
]


def create_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    db = schema_editor.connection.alias
    ctype, _ = ContentType.objects.using(db).get_or_create(
        app_label="console", model="betaapplication"
    )
    perms = [
        Permission.objects.using(db).get_or_create(
            content_type=ctype, codename=codename, defaults={"name": name}
        )[0]
        for codename, name in PERMISSIONS
    ]
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    group.permissions.add(*perms)


def remove_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0002_beta_application"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
