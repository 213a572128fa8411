"""Devices' Celery tasks. Thin: each calls one service."""

from celery import shared_task

from devices import imports
from devices.services import control_sessions_end_lapsed


@shared_task(name="devices.tasks.end_lapsed_control_sessions")
def end_lapsed_control_sessions() -> int:
    """R8: every minute (beat), end the control sessions whose lease has lapsed."""
    return control_sessions_end_lapsed()


@shared_task(name=imports.CHECK_TASK)
def import_job_check(job_id: int) -> str | None:
    """A bulk import's dry run: check the uploaded file's rows, with progress."""
    return imports.import_job_check(job_id=job_id)


@shared_task(name=imports.WRITE_TASK)
def import_job_write(job_id: int, actor_id: int | None = None) -> str | None:
    """A bulk import: create its devices and cameras, all or nothing."""
    return imports.import_job_write(job_id=job_id, actor_id=actor_id)


@shared_task(name="devices.tasks.sweep_import_jobs")
def sweep_import_jobs() -> tuple[int, int]:
    """Every 5 minutes (beat): fail the imports lost with their worker, drop old files."""
    return imports.import_jobs_sweep()
