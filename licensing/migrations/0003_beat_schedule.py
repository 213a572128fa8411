"""R12: the beat schedule, in django-celery-beat's database scheduler.

Created once by this migration (idempotent: existing rows, perhaps retimed by an operator
in the admin, are left as they are). Business times are Asia/Shanghai whatever TIME_ZONE
says, so each crontab carries its own time zone.
"""

from django.db import migrations
from django.utils import timezone

BUSINESS_TZ = "Asia/Shanghai"

TASKS = [
    # name, task, crontab (minute, hour), description
    (
        "licensing: expire licenses (00:05 CST)",
        "licensing.tasks.expire_licenses",
        ("5", "0"),
        "R5: record licenses past their expiry instant as expired, audit them, and send "
        "the expiry-date notices.",
    ),
    (
        "licensing: renewal reminders (09:00 CST)",
        "licensing.tasks.send_renewal_reminders",
        ("0", "9"),
        "R11: renewal reminders 30, 7 and 1 days before the expiry date and on it.",
    ),
    (
        "devices: end lapsed control sessions (every minute)",
        "devices.tasks.end_lapsed_control_sessions",
        ("*", "*"),
        "R8: end control sessions whose lease has lapsed.",
    ),
]


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, (minute, hour), description in TASKS:
        crontab = CrontabSchedule.objects.filter(
            minute=minute,
            hour=hour,
            day_of_month="*",
            month_of_year="*",
            day_of_week="*",
            timezone=BUSINESS_TZ,
        ).first()
        if crontab is None:
            crontab = CrontabSchedule.objects.create(
                minute=minute,
                hour=hour,
                day_of_month="*",
                month_of_year="*",
                day_of_week="*",
                timezone=BUSINESS_TZ,
            )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "crontab": crontab, "description": description},
        )
    # Historical models send no signals: tell a running beat that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_rest in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("licensing", "0002_sent_reminder"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
