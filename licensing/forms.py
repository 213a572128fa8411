"""Forms of the licensing pages. They check input; licensing.services makes the change and
checks again under its locks (R7)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from devices.models import FieldDevice
from licensing.models import License

# The service's own bound (licenses_bind_count): a typo of 100000 gets a form error.
MAX_BIND_COUNT = 10_000
UNBOUND = "none"


class BindCountForm(forms.Form):
    """R7: bind this many free licenses to the device, soonest-expiring first."""

    count = forms.IntegerField(
        label=_("Licenses to bind"),
        min_value=1,
        max_value=MAX_BIND_COUNT,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_BIND_COUNT}),
    )


class LicenseBindForm(forms.Form):
    """Bind one license to one of the tenant's devices."""

    device = forms.ModelChoiceField(
        label=_("Device"),
        queryset=FieldDevice.objects.none(),
        empty_label=None,
        error_messages={
            "required": _("Pick a device."),
            "invalid_choice": _("No such device in your organisation."),
        },
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        # Tenant-scoped: another tenant's device id is "no such device".
        self.fields["device"].queryset = FieldDevice.objects.filter(tenant=tenant)


class LicenseFilterForm(forms.Form):
    """The license list's filters (GET): status at read time (R5) and device."""

    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All")), *License.Status.choices]
    )
    device = forms.ChoiceField(label=_("Device"), required=False)

    def __init__(self, *args, devices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["device"].choices = [
            ("", _("All devices")),
            (UNBOUND, _("Not bound to a device")),
            *((str(d.pk), f"{d.serial} — {d.name}" if d.name else d.serial) for d in devices),
        ]
