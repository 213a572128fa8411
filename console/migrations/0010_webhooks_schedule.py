"""R15: the webhooks' periodic sweep, in django-celery-beat's database scheduler.

Every minute the worker delivers the webhook deliveries that are due (those whose on-commit
task was lost with the broker, and the retries) and disables the endpoints failing for 72
hours. Created once (an operator may retime it in the admin), as 0007_outbox_schedule does
for the email outbox.
"""

from django.db import migrations
from django.utils import timezone

NAME = "console: deliver webhooks (every minute)"
TASK = "console.tasks.deliver_webhooks"
DESCRIPTION = (
    "R15: deliver the webhook deliveries that are due (new ones whose queued delivery was "
    "lost, and retries), and disable endpoints failing for 72 hours."
)


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every_minute = {
        "minute": "*",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "Asia/Shanghai",
    }
    crontab = CrontabSchedule.objects.filter(**every_minute).first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**every_minute)
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": TASK, "crontab": crontab, "description": DESCRIPTION}
    )
    # Historical models send no signals: tell a running beat that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0009_webhooks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
