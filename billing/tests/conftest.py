import pytest

from console.tests.factories import UserFactory


@pytest.fixture
def staff(db):
    user = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client
