"""Forms of the licensing pages. They check input; licensing.services makes the change and
checks again under its locks (R7)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from devices.models import FieldDevice
from licensing import rules
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

    # The license list names the device by serial (a text box, not a list of the fleet).
    serial = forms.CharField(label=_("Device serial"), required=False, max_length=18)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        # Tenant-scoped: another tenant's device id is "no such device".
        self.fields["device"].queryset = FieldDevice.objects.filter(tenant=tenant)
        if self.data.get("serial") and not self.data.get("device"):
            self.fields["device"].required = False

    def clean(self):
        cleaned = super().clean()
        serial = (cleaned.get("serial") or "").strip().lower()
        if cleaned.get("device") is None and serial and "device" not in self.errors:
            device = self.fields["device"].queryset.filter(serial=serial).first()
            if device is None:
                self.add_error("serial", _("No device with this serial in your organisation."))
            else:
                cleaned["device"] = device
        elif cleaned.get("device") is None and "device" not in self.errors:
            self.add_error("device", self.fields["device"].error_messages["required"])
        return cleaned


class LicenseFilterForm(forms.Form):
    """The license list's filters (GET, so the state is in the URL): a license id, status
    at read time (R5), a device serial (or unbound), an expiry window, a sort."""

    q = forms.CharField(label=_("License id"), required=False, max_length=30)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All")), *License.Status.choices]
    )
    serial = forms.CharField(label=_("Device serial"), required=False, max_length=18)
    # A device by id (the device page links here), or UNBOUND. Checked against the tenant's
    # devices with one look-up rather than offered as a list of 10,000 choices.
    device = forms.CharField(required=False, widget=forms.HiddenInput)
    expiring = forms.TypedChoiceField(
        label=_("Expires within"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[
            ("", _("Any time")),
            ("7", _("7 days")),
            ("30", _("30 days")),
            ("90", _("90 days")),
        ],
    )
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=[
            ("expires", _("Expiry, soonest first")),
            ("-expires", _("Expiry, latest first")),
            ("-id", _("Newest first")),
            ("id", _("Oldest first")),
        ],
    )

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_device(self) -> str:
        value = self.cleaned_data["device"]
        self.device_chosen = None
        if value in ("", UNBOUND):
            return value
        if value.isdigit() and len(value) <= 18:
            self.device_chosen = FieldDevice.objects.filter(
                tenant=self.tenant, pk=int(value)
            ).first()
        if self.device_chosen is None:
            raise forms.ValidationError(
                forms.ChoiceField.default_error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            )
        return value


class DeviceFilterForm(forms.Form):
    """The device list's search, status filter (R1 against the valid licenses) and sort,
    in the URL (GET)."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("", _("All")),
            (rules.LICENSED, _("Licensed")),
            (rules.UNDER_LICENSED, _("Under-licensed")),
            (rules.UNLICENSED, _("Unlicensed")),
        ],
    )
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=[
            ("serial", _("Serial, A–Z")),
            ("-serial", _("Serial, Z–A")),
            ("name", _("Name, A–Z")),
            ("-name", _("Name, Z–A")),
            ("-created", _("Newest first")),
            ("created", _("Oldest first")),
        ],
    )
