"""R13: the transactional email outbox. An email is stored with the change that causes it,
one per recipient in their language, and delivered after the commit by whichever sender
claims it first (the task queued on commit, the sweep, `sendpendingemails`), retried with
backoff while the mail server fails, never lost when the broker is down, never sent twice
at once, always with the Message-ID it was stored with."""

import datetime as dt
import socket
import threading
from io import StringIO
from smtplib import SMTPRecipientsRefused

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail.backends import locmem
from django.core.management import call_command
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from console import outbox
from console.celery import app as celery_app
from console.emails import recipients_for_users, send_templated_email, tenant_recipients
from console.models import BetaApplication, Membership, OutboundEmail
from console.tests.factories import BetaApplicationFactory, MembershipFactory, UserFactory
from console.tests.test_beta_console import APPLICATION

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)


def store(*addresses, language="en", **kwargs):
    """A beta status email to each address, stored (and, in tests, delivered on commit
    only when the caller runs the on-commit callbacks)."""
    kwargs.setdefault("context", {"application": BetaApplicationFactory(), "state": "submitted"})
    return send_templated_email(
        to=list(addresses), template_prefix="emails/beta_status", language=language, **kwargs
    )


def deliver(at):
    with time_machine.travel(at, tick=False):
        return outbox.outbound_emails_deliver()


@pytest.fixture
def smtp(monkeypatch):
    """The (locmem) mail server: refuses the next `left` messages with `code`, and records
    the Message-ID of every message it was offered."""
    state = {"left": 0, "code": 421, "offered": []}
    real_send = locmem.EmailBackend.send_messages

    def send_messages(self, messages):
        state["offered"].extend(m.extra_headers["Message-ID"] for m in messages)
        if state["left"] > 0:
            state["left"] -= 1
            raise SMTPRecipientsRefused({m.to[0]: (state["code"], b"no") for m in messages})
        return real_send(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    return state


def closed_port() -> int:
    """A local TCP port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reset_broker_pools() -> None:
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """Celery publishes to a Redis that is not there (as when Redis is down in production):
    queueing a task raises after kombu's publish retries."""
    saved = {
        key: celery_app.conf[key]
        for key in ("broker_url", "task_always_eager", "broker_transport_options")
    }
    celery_app.conf.update(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0",
        task_always_eager=False,
        broker_transport_options={"max_retries": 1},
    )
    reset_broker_pools()
    yield
    celery_app.conf.update(saved)
    reset_broker_pools()


# --- the incident of issue 11: broker and mail server down during POST /apply/ --------------


def test_r13_broker_and_mail_server_down_the_change_commits_and_the_emails_go_out_once_later(
    client, settings, broker_down, django_capture_on_commit_callbacks, mailoutbox
):
    settings.LANGUAGE_CODE = "en"
    settings.SITE_URL = "https://console.example.com"
    # A real SMTP backend pointed at a port where no mail server listens.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 5
    reviewer = UserFactory(email="rita@example.com", is_staff=True, language="zh-hans")
    Group.objects.get(name="Reviewers").user_set.add(reviewer)
    applicant = UserFactory(email="qi@example.com")
    client.force_login(applicant)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/apply/", APPLICATION)  # the on-commit queueing fails
    assert response.status_code == 302
    application = BetaApplication.objects.get(applicant=applicant)
    emails = {e.to: e for e in OutboundEmail.objects.all()}
    # applicant, the application's contact address, the reviewer: each its own email
    assert sorted(emails) == ["qi@example.com", "qi@quay.example", "rita@example.com"]
    assert {e.status for e in emails.values()} == {"pending"}
    assert emails["rita@example.com"].language == "zh-hans"
    assert emails["qi@example.com"].language == "en"

    # The worker's sweep runs while the mail server is still down: every email is tried
    # once, the refusal recorded, the next attempt a minute later.
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=1), tick=False):
        run = outbox.outbound_emails_deliver()
    assert run.as_dict() == {"sent": 0, "retrying": 3, "failed": 0}
    for email in OutboundEmail.objects.all():
        assert (email.status, email.attempts) == ("pending", 1)
        assert "Connection refused" in email.last_error or "Errno" in email.last_error
    assert mailoutbox == []

    # Both come back: the sweep (the command) delivers each email once.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    out = StringIO()
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=3), tick=False):
        call_command("sendpendingemails", stdout=out)
        call_command("sendpendingemails", stdout=StringIO())  # again: nothing more
    assert "3" in out.getvalue()
    assert sorted(m.to[0] for m in mailoutbox) == sorted(emails)
    assert {m.extra_headers["Message-ID"] for m in mailoutbox} == {
        e.message_id for e in emails.values()
    }
    to_applicant = next(m for m in mailoutbox if m.to == ["qi@example.com"])
    assert "https://console.example.com/application/" in to_applicant.body
    assert "https://console.example.com/application/" in to_applicant.alternatives[0][0]
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {"sent"}
    assert application.state == BetaApplication.State.SUBMITTED


def test_r13_with_the_broker_down_nothing_is_sent_inline_and_the_sweep_task_sends_it(
    broker_down, django_capture_on_commit_callbacks, mailoutbox
):
    with django_capture_on_commit_callbacks(execute=True):
        store("ann@example.com")
    assert mailoutbox == []  # not sent in the request: the worker's job
    celery_app.conf.task_always_eager = True  # the broker is back
    from console.tasks import send_outbound_emails

    assert send_outbound_emails.delay().get() == {"sent": 1, "retrying": 0, "failed": 0}
    assert [m.to for m in mailoutbox] == [["ann@example.com"]]


# --- storing --------------------------------------------------------------------------------


def test_r13_stored_in_the_callers_transaction_a_rollback_stores_and_sends_nothing(
    django_capture_on_commit_callbacks, mailoutbox
):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        store("ann@example.com")
        assert OutboundEmail.objects.count() == 1
        raise RuntimeError("the change failed")
    assert not OutboundEmail.objects.exists()
    assert mailoutbox == []


def test_r13_nothing_goes_out_before_commit_then_once_on_commit(
    django_capture_on_commit_callbacks, mailoutbox
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        store("ann@example.com", "bo@example.com")
    assert mailoutbox == []
    assert OutboundEmail.objects.filter(status="pending").count() == 2
    for callback in callbacks:
        callback()
    assert sorted(m.to[0] for m in mailoutbox) == ["ann@example.com", "bo@example.com"]


def test_r13_one_email_per_recipient_and_a_dedup_key_stores_a_notice_once(
    django_capture_on_commit_callbacks, mailoutbox
):
    app = BetaApplicationFactory()
    context = {"application": app, "state": "submitted"}
    with django_capture_on_commit_callbacks(execute=True):
        store("Ann@example.com", "ann@example.com", "", "bo@example.com", context=context)
        store("ann@example.com", context=context, dedup_key="notice:1")
        store("ANN@example.com", "cy@example.com", context=context, dedup_key="notice:1")
    assert sorted(m.to[0] for m in mailoutbox) == [
        "Ann@example.com",
        "ann@example.com",
        "bo@example.com",
        "cy@example.com",
    ]
    assert OutboundEmail.objects.filter(dedup_key="notice:1").count() == 2


def test_r13_each_recipient_in_their_language_html_and_text_links_from_site_url(
    settings, tenant, django_capture_on_commit_callbacks, mailoutbox
):
    settings.SITE_URL = "https://fc.example.com"
    tenant.language = "en"
    tenant.save()
    zhu = UserFactory(email="zhu@example.com", language="zh-hans")
    ed = UserFactory(email="ed@example.com", language="")  # not chosen: the tenant's
    for user in (zhu, ed):
        MembershipFactory(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    assert recipients_for_users([zhu, ed], tenant) == [
        ("zhu@example.com", "zh-hans"),
        ("ed@example.com", "en"),
    ]
    assert sorted(tenant_recipients(tenant)) == [
        ("ed@example.com", "en"),
        ("zhu@example.com", "zh-hans"),
    ]
    app = BetaApplicationFactory(state="in_review")
    with django_capture_on_commit_callbacks(execute=True):
        send_templated_email(
            recipients=tenant_recipients(tenant),
            template_prefix="emails/beta_status",
            context={"application": app, "state": app.state},
        )
    by_to = {m.to[0]: m for m in mailoutbox}
    zh, en = by_to["zhu@example.com"], by_to["ed@example.com"]
    assert '<html lang="zh-hans">' in zh.alternatives[0][0]
    assert '<html lang="en">' in en.alternatives[0][0]
    assert zh.subject != en.subject
    assert "in review" in en.subject
    for message in (zh, en):
        assert message.alternatives[0][1] == "text/html"
        assert "https://fc.example.com/application/" in message.body
        assert 'href="https://fc.example.com/application/' in message.alternatives[0][0]
        assert message.extra_headers["Message-ID"].endswith("@fc.example.com>")


# --- delivery: claims, retries, leases --------------------------------------------------------


def test_r13_backoff_then_failed_after_about_three_days_with_one_message_id(smtp, mailoutbox):
    with time_machine.travel(T0, tick=False):
        [email] = store("ann@example.com")
    smtp["left"] = 1000
    at, schedule = T0, []
    while OutboundEmail.objects.get().status == "pending":
        email = OutboundEmail.objects.get()
        at = email.next_attempt_at
        assert deliver(at - dt.timedelta(seconds=1)).as_dict()["retrying"] == 0  # not yet due
        deliver(at)
        schedule.append(OutboundEmail.objects.get().next_attempt_at - at)
    minutes = [round(d.total_seconds() / 60) for d in schedule[:5]]
    assert minutes == [1, 5, 30, 120, 360]
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert dt.timedelta(days=3) <= at - T0 <= dt.timedelta(days=3, hours=12)
    assert "421" in email.last_error and email.lease_until is None
    # every attempt offered the same email: one Message-ID
    assert set(smtp["offered"]) == {email.message_id}
    assert len(smtp["offered"]) == outbox.MAX_ATTEMPTS
    # a failed email is left alone by later sweeps…
    assert deliver(at + dt.timedelta(days=1)).as_dict() == {"sent": 0, "retrying": 0, "failed": 0}
    # …until staff retry it, and the mail server takes it
    smtp["left"] = 0
    with time_machine.travel(at + dt.timedelta(days=1), tick=False):
        outbox.outbound_emails_retry_now(emails=OutboundEmail.objects.all())
    assert deliver(at + dt.timedelta(days=1)).sent == 1
    assert mailoutbox[0].extra_headers["Message-ID"] == email.message_id
    assert mailoutbox[0].message()["Message-ID"] == email.message_id


def test_r13_a_permanent_refusal_fails_at_once(smtp):
    store("nobody@example.com")
    smtp.update(left=1, code=550)
    assert deliver(timezone.now()).failed == 1
    assert OutboundEmail.objects.get().status == "failed"


def test_r13_a_leased_email_is_not_sent_by_another_sender_until_the_lease_lapses(mailoutbox):
    with time_machine.travel(T0, tick=False):
        store("ann@example.com")
        email = OutboundEmail.objects.get()
        # a sender claimed it, then its process died before sending
        token, claimed = outbox.outbound_emails_claim()
        assert [e.pk for e in claimed] == [email.pk]
        assert outbox.outbound_emails_claim() == ("", [])
    assert deliver(T0 + outbox.LEASE - dt.timedelta(seconds=1)).sent == 0
    assert deliver(T0 + outbox.LEASE).sent == 1
    sent = OutboundEmail.objects.get()
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert sent.claim_token != token
    assert mailoutbox[0].extra_headers["Message-ID"] == email.message_id


def test_r13_a_late_sender_cannot_mark_an_email_another_sender_owns(mailoutbox):
    with time_machine.travel(T0, tick=False):
        store("ann@example.com")
        old_token, [stale] = outbox.outbound_emails_claim()
    with time_machine.travel(T0 + outbox.LEASE, tick=False):
        new_token, [_mine] = outbox.outbound_emails_claim()
        outbox._mark_failed_attempt(stale, old_token, RuntimeError("late"))
    email = OutboundEmail.objects.get()
    assert (email.claim_token, email.last_error) == (new_token, "")


def test_r13_the_sweep_runs_every_minute_from_the_database_schedule():
    task = PeriodicTask.objects.select_related("crontab").get(task=outbox.SEND_TASK)
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("*", "*")
    from console.tasks import SEND_TIME_LIMIT, send_outbound_emails

    assert send_outbound_emails.name == outbox.SEND_TASK
    # the lease outlives the task: a killed task's emails are never leased out mid-send
    assert outbox.LEASE.total_seconds() > SEND_TIME_LIMIT


# --- staff ----------------------------------------------------------------------------------


def test_r13_staff_see_the_outbox_filter_search_and_retry_now(staff_client, smtp):
    store("ann@example.com")
    store("bo@example.com")
    smtp.update(left=1, code=550)
    outbox.outbound_emails_deliver()
    failed = OutboundEmail.objects.get(status="failed")
    changelist = reverse("admin:console_outboundemail_changelist")
    page = staff_client.get(changelist, {"status__exact": "failed"})
    assert page.status_code == 200
    html = page.content.decode()
    assert failed.to in html and "SMTPRecipientsRefused" in html
    found = staff_client.get(changelist, {"q": failed.to.upper()})
    assert list(found.context["cl"].result_list) == [failed]
    detail = staff_client.get(reverse("admin:console_outboundemail_change", args=[failed.pk]))
    assert detail.status_code == 200
    response = staff_client.post(
        changelist, {"action": "retry_now", "_selected_action": [failed.pk]}
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == "pending" and failed.next_attempt_at <= timezone.now()
    assert outbox.outbound_emails_deliver().sent == 1


def test_r13_staff_without_rights_cannot_see_the_outbox(client):
    clerk = UserFactory(is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse("admin:console_outboundemail_changelist")).status_code == 403


# --- concurrency (PostgreSQL) -----------------------------------------------------------------


def run_at_once(copies, target):
    barrier = threading.Barrier(copies)
    results, errors = [None] * copies, []

    def work(i):
        try:
            barrier.wait(timeout=10)
            results[i] = target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_r13_two_senders_at_once_send_each_email_once(postgres_only, monkeypatch):
    """The sweep, a worker's task and the command start together on 60 stored emails, in
    small batches: each email goes out exactly once."""
    real_send = locmem.EmailBackend.send_messages

    def slow_send(self, messages):
        threading.Event().wait(0.002)  # give the other sender time to race for rows
        return real_send(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", slow_send)
    # Stored while the broker was down: no on-commit delivery, all 60 wait for a sender.
    monkeypatch.setattr(outbox, "outbound_emails_queue", lambda **kwargs: None)
    app = BetaApplicationFactory()
    context = {"application": app, "state": "submitted"}
    for i in range(60):
        send_templated_email(
            to=[f"u{i}@example.com"], template_prefix="emails/beta_status", context=context
        )
    mail.outbox = []
    runs = run_at_once(3, lambda: outbox.outbound_emails_deliver(batch_size=4))
    assert sum(run.sent for run in runs) == 60
    assert len(mail.outbox) == 60
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 60
    assert OutboundEmail.objects.filter(status="sent", attempts=1).count() == 60
    # the command twice at once afterwards: nothing left to send
    run_at_once(2, lambda: call_command("sendpendingemails", stdout=StringIO()))
    assert len(mail.outbox) == 60
