"""Billing's Celery tasks: thin wrappers over billing.services."""

from celery import shared_task

from billing import services


@shared_task(name="billing.tasks.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Drop Idempotency-Keys past their retention (CONTRACT.md keeps them at least 24 h)."""
    return services.idempotency_keys_purge()
