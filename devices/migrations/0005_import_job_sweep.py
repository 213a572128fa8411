"""Device imports: the time of a job's last update, the partial indexes of the sweep, and the
sweep itself in django-celery-beat's database scheduler (every 5 minutes): running jobs lost
with their worker are failed, and files kept longer than a day are dropped.

The schedule is idempotent like the other schedule migrations: an existing row, perhaps
retimed by an operator in the admin, is left as it is.
"""

import django.utils.timezone
from django.db import migrations, models
from django.utils import timezone

NAME = "devices: sweep imports (every 5 minutes)"
TASK = "devices.tasks.sweep_import_jobs"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    fields = {
        "minute": "*/5",
        "hour": "*",
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
            "task": TASK,
            "crontab": crontab,
            "description": (
                "Device imports: fail the checks and imports whose worker was lost (no "
                "progress for longer than a task may run) and drop files kept over a day."
            ),
        },
    )
    # Historical models send no signals: tell a running beat that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0004_import_job"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="updated_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now, verbose_name="last update"
            ),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="errors",
            field=models.JSONField(blank=True, default=list, verbose_name="first errors"),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="language",
            field=models.CharField(
                default="zh-hans", editable=False, max_length=10, verbose_name="language"
            ),
        ),
        migrations.AlterField(
            model_name="importjob",
            name="preview",
            field=models.JSONField(blank=True, default=list, verbose_name="first rows"),
        ),
        migrations.AddIndex(
            model_name="importjob",
            index=models.Index(
                condition=models.Q(("status__in", ["validating", "importing"])),
                fields=["updated_at"],
                name="import_running_updated_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="importjob",
            index=models.Index(
                condition=models.Q(("content", b""), _negated=True),
                fields=["created_at"],
                name="import_content_created_idx",
            ),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
