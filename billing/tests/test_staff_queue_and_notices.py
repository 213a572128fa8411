"""What waits for staff (R13): the admin index's work queue per group, with counts, ages and
links to filtered changelists, in a constant number of queries; the staff notices of a new
application and a new refund request (STAFF_NOTIFY_EMAILS, else the group that acts); the
09:00 CST digest, sent only when something waits; the admin's own name."""

import datetime as dt
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from billing import services
from billing.models import Order
from billing.staff_services import staff_digest_send
from billing.tests.utils import cst, new_order, paid_new_order
from console import beta_services
from console.models import BetaApplication, OutboundEmail
from console.staff import BILLING, REVIEWERS, staff_notice_recipients
from console.tests.factories import BetaApplicationFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

S = BetaApplication.State
NOW = cst(2026, 12, 2, 9, 0)


def staff_user(email: str, *groups: str, **extra):
    user = UserFactory(email=email, is_staff=True, language="en", **extra)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def reviewer():
    return staff_user("rita@example.com", REVIEWERS)


@pytest.fixture
def biller():
    return staff_user("bill@example.com", BILLING)


def emails(template: str) -> list[OutboundEmail]:
    return list(OutboundEmail.objects.filter(template=template).order_by("to"))


# --- the work queue on the admin index -------------------------------------------------------


def waiting_work(tenant):
    BetaApplicationFactory(state=S.SUBMITTED)
    BetaApplicationFactory(state=S.SUBMITTED)
    BetaApplicationFactory(state=S.IN_REVIEW)
    BetaApplicationFactory(state=S.APPROVED)
    BetaApplicationFactory(state=S.REJECTED)
    old = new_order(tenant, quantity=1, at=NOW - dt.timedelta(days=9))
    new_order(tenant, quantity=1, at=NOW - dt.timedelta(days=2))
    services.order_refund_request(tenant=tenant, order=paid_new_order(tenant, quantity=1))
    return old


def count(html: str, row_id: str) -> int:
    match = re.search(rf'<tr id="{row_id}">.*?<td class="count[^"]*">(\d+)</td>', html, re.S)
    assert match, row_id
    return int(match.group(1))


def test_index_shows_each_group_what_waits_with_links(client, reviewer, biller, tenant):
    old = waiting_work(tenant)
    with time_machine.travel(NOW, tick=False):
        client.force_login(reviewer)
        page = client.get("/admin/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="queue-reviews"' in html and 'id="queue-billing"' not in html
    assert [count(html, f"queue-{s}") for s in ("submitted", "in-review", "approved")] == [2, 1, 1]
    for state in ("submitted", "in_review", "approved"):
        assert f"/admin/console/betaapplication/?state__exact={state}" in html

    with time_machine.travel(NOW, tick=False):
        client.force_login(biller)
        html = client.get("/admin/").content.decode()
    assert 'id="queue-billing"' in html and 'id="queue-reviews"' not in html
    assert count(html, "queue-pending-orders") == 2
    assert count(html, "queue-overdue-orders") == 1
    assert count(html, "queue-open-refunds") == 1
    # Oldest first, the one unpaid for more than 7 days flagged.
    rows = re.findall(r'<a href="/admin/billing/order/(\d+)/change/">', html)
    assert rows[0] == str(old.pk)
    assert html.count('<span class="overdue">') == 1
    assert "/admin/billing/order/?status__exact=pending_payment" in html
    assert "/admin/billing/refundrequest/?status__exact=requested" in html
    # The links lead to the filtered lists.
    listed = client.get("/admin/billing/order/?status__exact=pending_payment")
    assert listed.status_code == 200
    assert {o.status for o in listed.context["cl"].result_list} == {Order.Status.PENDING_PAYMENT}


def test_staff_in_neither_group_sees_no_queue(client, tenant):
    waiting_work(tenant)
    client.force_login(staff_user("ops@example.com"))
    html = client.get("/admin/").content.decode()
    assert 'id="work-queue"' not in html


def test_the_queue_costs_the_same_queries_whatever_waits(client, tenant):
    root = UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(root)

    def index_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/admin/").status_code == 200
        return len(ctx.captured_queries)

    before = index_queries()
    waiting_work(tenant)
    for _i in range(5):
        BetaApplicationFactory(state=S.SUBMITTED)
        new_order(tenant, quantity=1)
    assert index_queries() == before


def test_the_admin_is_titled_field_console(client, reviewer):
    client.force_login(reviewer)
    html = client.get("/admin/").content.decode()
    assert "Field Console" in html
    assert "Django administration" not in html and "Django site admin" not in html
    with time_machine.travel(NOW, tick=False):
        client.cookies["django_language"] = "zh-hans"
        chinese = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "Django 管理" not in chinese


# --- staff notices ---------------------------------------------------------------------------


def submit(applicant):
    return beta_services.beta_application_submit(
        applicant=applicant,
        company_name="Quay Robotics",
        contact_name="Qi",
        phone="+86 21 5555 0101",
        email=applicant.email,
        industry="ports",
        scenario="Cranes.",
        expected_devices=3,
        cameras_per_device=2,
        resolution="1080p",
        language="en",
    )


def test_a_new_application_is_told_to_the_reviewers(reviewer, biller):
    staff_user("gone@example.com", REVIEWERS, is_active=False)
    submit(UserFactory(email="ann@example.com"))
    assert [e.to for e in emails("emails/beta_new_application")] == ["rita@example.com"]


def test_a_new_application_is_told_to_staff_notify_emails_when_set(settings, reviewer):
    settings.STAFF_NOTIFY_EMAILS = ["desk@example.com", "Rita@example.com"]
    submit(UserFactory(email="ann@example.com"))
    sent = emails("emails/beta_new_application")
    assert sorted(e.to.lower() for e in sent) == ["desk@example.com", "rita@example.com"]


def test_a_new_refund_request_is_told_to_billing(biller, reviewer, tenant):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order, reason="Bought twice")
    [notice] = emails("emails/staff_refund_requested")
    assert notice.to == "bill@example.com"
    assert f"R-{refund.pk}" in notice.subject
    assert "Bought twice" in notice.body_text
    assert f"/admin/billing/refundrequest/{refund.pk}/change/" in notice.body_text


def test_recipients_fall_back_to_the_group_and_include_superusers(reviewer, biller):
    UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    assert [a for a, _lang in staff_notice_recipients(BILLING)] == [
        "bill@example.com",
        "root@example.com",
    ]


# --- the morning digest ----------------------------------------------------------------------


def test_the_digest_is_scheduled_at_nine_in_shanghai():
    task = PeriodicTask.objects.get(task="billing.tasks.send_staff_digest")
    assert (task.crontab.hour, task.crontab.minute) == ("9", "0")
    assert str(task.crontab.timezone) == "Asia/Shanghai"


def test_no_digest_when_nothing_waits(reviewer, biller, tenant):
    BetaApplicationFactory(state=S.REJECTED)
    new_order(tenant, quantity=1, at=NOW - dt.timedelta(days=3))  # not late yet
    with time_machine.travel(NOW, tick=False):
        assert staff_digest_send() == 0
    assert emails("emails/staff_digest") == []


def test_the_digest_lists_what_waits_to_each_group_once_a_morning(reviewer, biller, tenant):
    late = waiting_work(tenant)
    with time_machine.travel(NOW, tick=False):
        assert staff_digest_send() == 2
        staff_digest_send()  # a re-run the same morning sends nothing new
    by_to = {e.to: e for e in emails("emails/staff_digest")}
    assert set(by_to) == {"rita@example.com", "bill@example.com"}
    review = by_to["rita@example.com"].body_text
    assert "Submitted, to review: 2" in review and "Open refund requests" not in review
    billing = by_to["bill@example.com"].body_text
    assert f"#{late.pk} " in billing
    assert "Orders unpaid for more than 7 days: 1" in billing
    assert "Open refund requests: 1" in billing
    assert "2026-12-02" in by_to["bill@example.com"].subject


def test_the_digest_task_runs_the_digest(reviewer):
    from billing.tasks import send_staff_digest

    BetaApplicationFactory(state=S.SUBMITTED)
    assert send_staff_digest() == 1
