"""The Celery app: `celery -A console worker`, `celery -A console beat`.

Configured from Django settings (CELERY_*): JSON only, late acks, time limits, and
django-celery-beat's database scheduler. The broker is REDIS_URL, or the embedded
filesystem broker when it is unset.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
