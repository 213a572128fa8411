"""Billing's Celery tasks: thin wrappers over billing.services."""

from celery import shared_task

from billing import services, staff_services


@shared_task(name="billing.tasks.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Drop Idempotency-Keys past their retention (CONTRACT.md keeps them at least 24 h)."""
    return services.idempotency_keys_purge()


# Not acks_late: a digest re-run after its worker died would store the morning's emails a
# second time (nothing marks a day's digest as sent). A digest lost to a crash before its
# commit is the lesser harm: the next morning's lists everything that still waits.
@shared_task(name="billing.tasks.send_staff_digest", ignore_result=True, acks_late=False)
def send_staff_digest() -> int:
    """R13: the 09:00 CST digest of what waits for staff, sent only when something waits."""
    return staff_services.staff_digest_send()
