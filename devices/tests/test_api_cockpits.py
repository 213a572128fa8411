"""API v1 remote cockpits: CRUD and validation.

Who may call is covered for every endpoint in console/tests/test_api_access.py.
"""

import pytest

from console.tests.factories import CockpitFactory
from devices.models import RemoteCockpit

pytestmark = pytest.mark.django_db

URL = "/api/v1/cockpits/"


def test_create_list_get_patch_delete(admin_api, tenant, other_tenant):
    CockpitFactory(tenant=other_tenant, name="Not mine")
    response = admin_api.post(URL, {"name": "  Shanghai desk 1 "}, format="json")
    assert response.status_code == 201
    cockpit = RemoteCockpit.objects.get(tenant=tenant)
    assert response.json() == {"id": cockpit.pk, "name": "Shanghai desk 1"}

    listed = admin_api.get(URL).json()
    assert listed["count"] == 1
    assert listed["results"] == [{"id": cockpit.pk, "name": "Shanghai desk 1"}]

    assert admin_api.get(f"{URL}{cockpit.pk}/").json()["name"] == "Shanghai desk 1"
    response = admin_api.patch(f"{URL}{cockpit.pk}/", {"name": "Desk 2"}, format="json")
    assert response.json() == {"id": cockpit.pk, "name": "Desk 2"}

    assert admin_api.delete(f"{URL}{cockpit.pk}/").status_code == 204
    assert not RemoteCockpit.objects.filter(tenant=tenant).exists()


def test_list_ordering(admin_api, tenant):
    b = CockpitFactory(tenant=tenant, name="B")
    a = CockpitFactory(tenant=tenant, name="A")
    assert [c["id"] for c in admin_api.get(URL).json()["results"]] == [a.pk, b.pk]
    assert [c["id"] for c in admin_api.get(URL, {"ordering": "-name"}).json()["results"]] == [
        b.pk,
        a.pk,
    ]
    assert admin_api.get(URL, {"ordering": "secret"}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": None}, {"name": ["a"]}],
)
def test_create_validates(admin_api, body):
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert not RemoteCockpit.objects.exists()


def test_patch_validates(admin_api, tenant):
    cockpit = CockpitFactory(tenant=tenant, name="Desk")
    response = admin_api.patch(f"{URL}{cockpit.pk}/", {"name": ""}, format="json")
    assert response.status_code == 400
    cockpit.refresh_from_db()
    assert cockpit.name == "Desk"
