"""The team page: owners invite by email (a signed, expiring, single-use link), change roles
and remove members, never the last owner; admins and viewers read the list."""

import re
import threading
import time
from urllib.parse import urlsplit

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from console import staff_services, team
from console.errors import Forbidden
from console.models import AuditEvent, Invitation, Membership, OutboundEmail, Tenant, User
from console.tests.factories import MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def dave(tenant):
    """An admin of `tenant`."""
    user = UserFactory(email="dave@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    return user


def invite(client, email="new@example.com", role="admin"):
    return client.post("/team/", {"email": email, "role": role})


def link_of(email: OutboundEmail) -> str:
    return re.search(r"http://[^\s]+/invite/[^\s/]+/", email.body_text).group(0)


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_owner_invites_by_email_and_the_invitee_sets_a_password(owner, tenant, alice, client):
    response = invite(owner)
    assert response.status_code == 302
    invitation = Invitation.objects.get(tenant=tenant)
    assert (invitation.email, invitation.role, invitation.status) == (
        "new@example.com",
        "admin",
        "pending",
    )
    email = OutboundEmail.objects.get(to="new@example.com")
    assert tenant.name in email.subject
    url = path_of(link_of(email))
    assert AuditEvent.objects.filter(tenant=tenant, action="invitation.created").exists()

    client.logout()
    page = client.get(url)
    assert page.status_code == 200 and b"Choose a password" in page.content
    response = client.post(
        url, {"full_name": "New Person", "password1": "a long pass 2026!", "password2": "x"}
    )
    assert response.status_code == 400 and b"The two passwords differ" in response.content
    assert not User.objects.filter(email="new@example.com").exists()
    response = client.post(
        url,
        {
            "full_name": "New Person",
            "password1": "a long pass 2026!",
            "password2": "a long pass 2026!",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.check_password("a long pass 2026!")
    assert Membership.objects.get(user=user, tenant=tenant).role == "admin"
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.accepted_by == user
    # Single use: the same link again is refused.
    client.logout()
    assert client.get(url).status_code == 404
    assert Membership.objects.filter(tenant=tenant).count() == 2


def test_an_existing_account_logs_in_first_and_joins(owner, tenant, charlie, client):
    invite(owner, email="charlie@example.com", role="viewer")
    url = path_of(link_of(OutboundEmail.objects.get(to="charlie@example.com")))
    client.logout()
    page = client.get(url)
    assert b"log in" in page.content.lower()
    assert client.post(url).status_code == 200  # no account made, nothing joined
    assert not Membership.objects.filter(user=charlie, tenant=tenant).exists()
    client.force_login(charlie)
    assert client.post(url).status_code == 302
    assert Membership.objects.get(user=charlie, tenant=tenant).role == "viewer"
    # The link works once.
    assert client.post(url).status_code == 404


def test_another_account_cannot_use_the_link(owner, tenant, client, charlie):
    invite(owner, email="someone@example.com")
    url = path_of(link_of(OutboundEmail.objects.get(to="someone@example.com")))
    client.force_login(charlie)
    response = client.post(url)
    assert response.status_code == 200 and b"You are logged in as" in response.content
    assert not Membership.objects.filter(user=charlie, tenant=tenant).exists()


def test_the_link_expires(owner, tenant, client):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        invite(owner)
        url = path_of(link_of(OutboundEmail.objects.get(to="new@example.com")))
        client.logout()
        traveller.shift(team.INVITATION_MAX_AGE - timezone.timedelta(minutes=1))
        assert client.get(url).status_code == 200
        traveller.shift(timezone.timedelta(minutes=2))
        assert client.get(url).status_code == 404
        assert b"not valid" in client.get(url).content


def test_resend_makes_a_new_link_and_revoke_ends_it(owner, tenant, client):
    invite(owner)
    invitation = Invitation.objects.get()
    first = path_of(link_of(OutboundEmail.objects.get(to="new@example.com")))
    assert owner.post(f"/team/invitations/{invitation.pk}/resend/").status_code == 302
    emails = OutboundEmail.objects.filter(to="new@example.com").order_by("id")
    assert emails.count() == 2
    second = path_of(link_of(emails.last()))
    assert first != second
    assert owner.get(first).status_code == 404  # superseded
    assert owner.post(f"/team/invitations/{invitation.pk}/revoke/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == "revoked"
    client.logout()
    assert client.get(second).status_code == 404
    assert set(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="invitation.").values_list(
            "action", flat=True
        )
    ) == {"invitation.created", "invitation.resent", "invitation.revoked"}


def test_bad_input_is_a_form_error_and_nothing_is_written(owner, tenant, alice):
    for data in [
        {"email": "not an address", "role": "admin"},
        {"email": "x@example.com", "role": "emperor"},
        {"email": "alice@example.com", "role": "admin"},  # already a member
    ]:
        response = owner.post("/team/", data)
        assert response.status_code == 400
        assert b"errorlist" in response.content
    assert not Invitation.objects.exists()
    assert not OutboundEmail.objects.exists()
    invite(owner, email="twice@example.com")
    response = invite(owner, email="TWICE@example.com")
    assert response.status_code == 400 and b"Already invited" in response.content
    assert Invitation.objects.count() == 1


def test_viewers_and_admins_read_the_team_but_change_nothing(client, tenant, bob, dave, alice):
    invite_target = Membership.objects.get(user=bob)
    for user in (bob, dave):
        client.force_login(user)
        page = client.get("/team/")
        assert page.status_code == 200
        assert b"alice@example.com" in page.content
        assert b"Send the invitation" not in page.content
        assert invite(client).status_code == 403
        assert (
            client.post(f"/team/members/{invite_target.pk}/role/", {"role": "owner"}).status_code
            == 403
        )
        assert client.post(f"/team/members/{invite_target.pk}/remove/").status_code == 403
    assert not Invitation.objects.exists()
    assert Membership.objects.get(user=bob).role == "viewer"


def test_owner_changes_roles_and_removes_members_with_a_confirmation(owner, tenant, bob, alice):
    membership = Membership.objects.get(user=bob)
    assert owner.post(f"/team/members/{membership.pk}/role/", {"role": "admin"}).status_code == 302
    membership.refresh_from_db()
    assert membership.role == "admin"
    confirm = owner.get(f"/team/members/{membership.pk}/remove/")
    assert confirm.status_code == 200 and b"bob@example.com" in confirm.content
    assert Membership.objects.filter(pk=membership.pk).exists()  # a GET removes nothing
    assert owner.post(f"/team/members/{membership.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    actions = list(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="membership.").values_list(
            "action", flat=True
        )
    )
    assert "membership.role_changed" in actions and "membership.removed" in actions


def test_never_the_last_owner(owner, tenant, alice):
    mine = Membership.objects.get(user=alice)
    owner.post(f"/team/members/{mine.pk}/role/", {"role": "viewer"})
    owner.post(f"/team/members/{mine.pk}/remove/")
    mine.refresh_from_db()
    assert mine.role == "owner"
    page = owner.get("/team/")
    assert b"at least one owner" in page.content


def test_another_tenants_members_and_invitations_are_404(owner, charlie, other_tenant):
    theirs = Membership.objects.get(user=charlie)
    invitation = team.invitation_create(
        tenant=other_tenant, email="x@example.com", role="viewer", actor=charlie
    )
    assert owner.post(f"/team/members/{theirs.pk}/role/", {"role": "viewer"}).status_code == 404
    assert owner.get(f"/team/members/{theirs.pk}/remove/").status_code == 404
    assert owner.post(f"/team/invitations/{invitation.pk}/revoke/").status_code == 404
    assert owner.post(f"/team/invitations/{invitation.pk}/resend/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == "owner"


def test_a_suspended_tenant_is_read_only(owner, tenant):
    tenant.status = "suspended"
    tenant.save()
    assert invite(owner).status_code == 403
    assert not Invitation.objects.exists()


def test_every_team_service_refuses_a_suspended_tenant_and_writes_nothing(owner, tenant, alice):
    """R9 in the services themselves, not only behind the pages: a command or a stale page
    that calls them with a tenant read before the suspension changes nothing either."""
    invite(owner, email="new@example.com")
    invitation = Invitation.objects.get()
    member = MembershipFactory(user=UserFactory(email="m@example.com"), tenant=tenant)
    stale = Tenant.objects.get(pk=tenant.pk)
    Tenant.objects.filter(pk=tenant.pk).update(status="suspended")
    before = (
        list(Invitation.objects.values()),
        list(Membership.objects.values()),
        AuditEvent.objects.count(),
        OutboundEmail.objects.count(),
    )
    calls = [
        lambda: team.invitation_create(tenant=stale, email="x@example.com", role="viewer"),
        lambda: team.invitation_resend(tenant=stale, invitation=invitation),
        lambda: team.invitation_revoke(tenant=stale, invitation=invitation),
        lambda: team.member_set_role(tenant=stale, membership=member, role="admin"),
        lambda: team.member_remove(tenant=stale, membership=member),
    ]
    for call in calls:
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "TENANT_SUSPENDED"
    after = (
        list(Invitation.objects.values()),
        list(Membership.objects.values()),
        AuditEvent.objects.count(),
        OutboundEmail.objects.count(),
    )
    assert after == before


def test_no_one_joins_a_suspended_tenant_and_the_invitation_stays_open(
    owner, tenant, client, charlie
):
    """R9: a suspended tenant's console is read-only, so accepting an invitation is refused
    with a clear message, nothing is written, and the link works after the reactivation."""
    invite(owner, email="new@example.com")
    invite(owner, email="charlie@example.com", role="viewer")
    new_url = path_of(link_of(OutboundEmail.objects.get(to="new@example.com")))
    charlie_url = path_of(link_of(OutboundEmail.objects.get(to="charlie@example.com")))
    tenant.status = "suspended"
    tenant.save()
    users, audits = User.objects.count(), AuditEvent.objects.count()

    client.logout()
    page = client.get(new_url)
    assert page.status_code == 200
    assert b'id="invitation-suspended"' in page.content
    assert b"is suspended, so no one can join it for now" in page.content
    assert b"password1" not in page.content  # no form to join
    password = "a long pass 2026!"
    refused = client.post(
        new_url, {"full_name": "New Person", "password1": password, "password2": password}
    )
    assert refused.status_code == 403 and b'id="invitation-suspended"' in refused.content
    client.force_login(charlie)
    assert b"Join the organisation" not in client.get(charlie_url).content
    refused = client.post(charlie_url)
    assert refused.status_code == 403 and b"Nothing was changed" in refused.content

    assert User.objects.count() == users and AuditEvent.objects.count() == audits
    assert not User.objects.filter(email="new@example.com").exists()
    assert not Membership.objects.filter(user=charlie, tenant=tenant).exists()
    assert set(Invitation.objects.values_list("status", flat=True)) == {"pending"}

    tenant.status = "active"
    tenant.save()
    assert client.post(charlie_url).status_code == 302
    assert Membership.objects.get(user=charlie, tenant=tenant).role == "viewer"


def test_the_accept_service_refuses_a_suspended_tenant_read_before_the_suspension(
    owner, tenant, charlie
):
    """The page read the invitation (and its tenant) while still active; the service checks
    the tenant's row again under its lock."""
    invite(owner, email="charlie@example.com")
    invitation = Invitation.objects.select_related("tenant").get()
    Tenant.objects.filter(pk=tenant.pk).update(status="suspended")
    assert invitation.tenant.is_active  # the stale copy
    with pytest.raises(Forbidden) as refused:
        team.invitation_accept(invitation=invitation, user=charlie)
    assert refused.value.code == "TENANT_SUSPENDED"
    invitation.refresh_from_db()
    assert invitation.status == "pending" and invitation.accepted_by is None
    assert not Membership.objects.filter(user=charlie, tenant=tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_an_accept_waits_for_a_suspension_in_progress_and_is_refused(postgres_only, tenant):
    """Under a race: the suspension holds the tenant's row when the invitee accepts; the
    accept waits for it to commit, then sees the tenant suspended and writes nothing."""
    owner_user = UserFactory(email="o@example.com")
    MembershipFactory(user=owner_user, tenant=tenant, role=Membership.Role.OWNER)
    invitee = UserFactory(email="joiner@example.com")
    invitation = team.invitation_create(
        tenant=tenant, email=invitee.email, role="viewer", actor=owner_user
    )
    invitation = Invitation.objects.select_related("tenant").get(pk=invitation.pk)
    suspended = threading.Event()
    results = {}

    def suspend():
        try:
            with transaction.atomic():
                staff_services.tenant_suspend(tenant=tenant, actor="system", reason="Unpaid.")
                suspended.set()
                time.sleep(0.5)  # the accept below is waiting on the tenant's row now
        finally:
            connection.close()

    def accept():
        suspended.wait(10)
        try:
            team.invitation_accept(invitation=invitation, user=invitee)
            results["accept"] = "joined"
        except Forbidden as exc:
            results["accept"] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=suspend), threading.Thread(target=accept)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"accept": "TENANT_SUSPENDED"}
    assert Invitation.objects.get(pk=invitation.pk).status == "pending"
    assert not Membership.objects.filter(user=invitee, tenant=tenant).exists()


@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_one_owner(postgres_only, tenant):
    """The last-owner rule under a race: each owner removes the other through the page at
    the same moment; the tenant lock serialises them, so the second sees the last owner."""
    a = UserFactory(email="a@example.com")
    b = UserFactory(email="b@example.com")
    ma = MembershipFactory(user=a, tenant=tenant, role=Membership.Role.OWNER)
    mb = MembershipFactory(user=b, tenant=tenant, role=Membership.Role.OWNER)
    barrier = threading.Barrier(2)
    results = {}

    def remove(user, membership):
        client = Client()
        client.force_login(user)
        barrier.wait()
        try:
            results[user.email] = client.post(f"/team/members/{membership.pk}/remove/")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=remove, args=(a, mb)),
        threading.Thread(target=remove, args=(b, ma)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owners = Membership.objects.filter(tenant=tenant, role="owner")
    assert owners.count() == 1
    assert AuditEvent.objects.filter(tenant=tenant, action="membership.removed").count() == 1
