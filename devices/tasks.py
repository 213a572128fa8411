"""Devices' Celery tasks. Thin: each calls one service."""

from celery import shared_task

from devices.services import control_sessions_end_lapsed


@shared_task(name="devices.tasks.end_lapsed_control_sessions")
def end_lapsed_control_sessions() -> int:
    """R8: every minute (beat), end the control sessions whose lease has lapsed."""
    return control_sessions_end_lapsed()
