"""factory_boy factories shared by every app's tests."""

import datetime as dt

import factory
from django.utils import timezone

from console.models import ApiKey, BetaApplication, Membership, Tenant, User
from devices.models import Camera, FieldDevice, RemoteCockpit
from licensing.models import License


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.OWNER


def make_api_key(tenant: Tenant, role: str = ApiKey.Role.ADMIN, name: str = "test key"):
    """Create a key; returns (ApiKey, raw key) — the raw key is what a client sends."""
    raw, prefix, digest = ApiKey.generate()
    key = ApiKey.objects.create(tenant=tenant, name=name, role=role, prefix=prefix, digest=digest)
    return key, raw


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FieldDevice

    tenant = factory.SubFactory(TenantFactory)
    serial = factory.Sequence(lambda n: f"dev_{n}")
    name = factory.Sequence(lambda n: f"Device {n}")


def _next_slot(camera) -> int:
    taken = set(Camera.objects.filter(device=camera.device).values_list("slot", flat=True))
    return min(s for s in range(1, 9) if s not in taken) if len(taken) < 8 else 9


class CameraFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Camera

    device = factory.SubFactory(DeviceFactory)
    slot = factory.LazyAttribute(_next_slot)
    name = factory.Sequence(lambda n: f"cam {n}")
    width = 1280
    height = 720


class CockpitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RemoteCockpit

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Cockpit {n}")


class LicenseFactory(factory.django.DjangoModelFactory):
    """A paid license valid from now for a year (use licensing.services for R3 dates)."""

    class Meta:
        model = License

    tenant = factory.SubFactory(TenantFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=1))
    expires_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(days=365))
    status = License.Status.ACTIVE


class BetaApplicationFactory(factory.django.DjangoModelFactory):
    """A submitted beta application (R9); move it on with console.beta_services."""

    class Meta:
        model = BetaApplication

    applicant = factory.SubFactory(UserFactory)
    company_name = factory.Sequence(lambda n: f"Company {n}")
    contact_name = factory.Faker("name")
    phone = "+86 138 0000 0000"
    email = factory.LazyAttribute(lambda o: o.applicant.email)
    industry = BetaApplication.Industry.MINING
    scenario = "Remote operation of haul trucks in an open-pit mine."
    expected_devices = 10
    cameras_per_device = 4
    resolution = BetaApplication.Resolution.HD_1080
    language = "en"
