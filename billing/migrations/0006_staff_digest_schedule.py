"""The morning staff digest (R13) in django-celery-beat's database scheduler: 09:00 CST,
when the reminders go out too (R12).

Idempotent like the other schedule migrations: an existing row, perhaps retimed by an
operator in the admin, is left as it is.
"""

from django.db import migrations
from django.utils import timezone

NAME = "billing: staff digest of what waits (09:00 CST)"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    fields = {
        "minute": "0",
        "hour": "9",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "Asia/Shanghai",
    }
    crontab = CrontabSchedule.objects.filter(**fields).first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**fields)
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "billing.tasks.send_staff_digest",
            "crontab": crontab,
            "description": (
                "Email staff what waits: applications to review, orders unpaid for more "
                "than 7 days, open refund requests; nothing when nothing waits."
            ),
        },
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
