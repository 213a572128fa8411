"""The Celery app: `celery -A console worker`, `celery -A console beat`.

Configured from Django settings (CELERY_*): JSON only, late acks, time limits, and
django-celery-beat's database scheduler. The broker is REDIS_URL, or the embedded
filesystem broker when it is unset.
"""

import os

from celery import Celery
from celery.result import AsyncResult

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue(task_name: str, *args, **options) -> AsyncResult:
    """Queue the task registered as `task_name` (apply_async's options: countdown, …).

    Services and jobs queue their work by name through here: task modules import services,
    never the reverse, so no import cycle runs between them.

    A web process or a command has usually not imported any task module (only the worker
    autodiscovers them when it starts): the first call here does the same discovery, so the
    task runs as configured — published to the broker, or at once when tasks are eager
    (tests) — and a misspelt name fails here, not in a worker."""
    if task_name not in app.tasks:
        app.autodiscover_tasks(force=True)
    return app.tasks[task_name].apply_async(args, **options)
