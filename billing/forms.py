"""Forms of the order pages: the quote calculator (R1, R2), buying new licenses, renewing
(R4) and asking for a refund (R10). They check input; billing.services decides and checks
again, so a form is never the only guard."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.models import Order
from billing.services import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_QUANTITY
from console.limits import MAX_CAMERAS_PER_DEVICE
from devices.forms import check_pixels, side_field
from licensing.models import License
from licensing.rules import MAX_YEARS

QUOTE_ROWS = MAX_CAMERAS_PER_DEVICE  # R1: a device carries at most 8 streams


def years_field() -> forms.IntegerField:
    return forms.IntegerField(
        label=_("Years"),
        initial=1,
        min_value=1,
        max_value=MAX_YEARS,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_YEARS}),
    )


def idempotency_field() -> forms.CharField:
    # One key per rendered form (console.pages.form_key): a double submit finds the order
    # the first submit made instead of placing a second one.
    return forms.CharField(widget=forms.HiddenInput, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)


class QuoteForm(forms.Form):
    """Up to eight cameras (width × height), max concurrent streams and years: R1 tells the
    licenses, the tenant's contract price tells the total (R2). Sent with GET."""

    max_concurrent_streams = forms.IntegerField(
        label=_("Max concurrent streams"),
        required=False,
        min_value=1,
        max_value=MAX_CAMERAS_PER_DEVICE,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_CAMERAS_PER_DEVICE}),
        help_text=_("Empty: all cameras stream at once."),
    )
    years = years_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(1, QUOTE_ROWS + 1):
            self.fields[f"w{i}"] = side_field(_("Camera %(n)d width") % {"n": i})
            self.fields[f"h{i}"] = side_field(_("Camera %(n)d height") % {"n": i})
        self.fields["years"].required = False  # empty: one year
        self.cameras: list[tuple[int, int]] = []

    def rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"w{i}"], self[f"h{i}"]) for i in range(1, QUOTE_ROWS + 1)]

    def clean(self):
        data = super().clean()
        cameras = []
        for i in range(1, QUOTE_ROWS + 1):
            w, h = f"w{i}", f"h{i}"
            if w in self.errors or h in self.errors:
                continue
            width, height = data.get(w), data.get(h)
            if width is None and height is None:
                continue
            if width is None or height is None:
                self.add_error(w if width is None else h, _("Enter both width and height."))
                continue
            check_pixels(self, width, height, w)
            cameras.append((width, height))
        if not cameras and not self.errors:
            raise forms.ValidationError(_("Enter at least one camera's width and height."))
        self.cameras = cameras
        if "years" not in self.errors and data.get("years") is None:
            data["years"] = 1
        return data


class OrderNewForm(forms.Form):
    """Buy new licenses: quantity × years at the tenant's contract price (R2)."""

    quantity = forms.IntegerField(
        label=_("Licenses"),
        min_value=1,
        max_value=MAX_QUANTITY,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_QUANTITY}),
    )
    years = years_field()
    idempotency_key = idempotency_field()


# The largest primary key a database holds (64-bit): larger ids are no license at all.
MAX_ID = 2**63 - 1


class LicenseChoiceField(forms.ModelMultipleChoiceField):
    def clean(self, value):
        # An id past 64 bits would reach SQLite's driver as an OverflowError in `pk__in`;
        # it is simply not one of the tenant's licenses.
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, str) and item.isdigit() and int(item) > MAX_ID:
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": item},
                )
        return super().clean(value)


class RenewForm(forms.Form):
    """R4: renew the selected licenses (the license list's check boxes) by N years."""

    licenses = LicenseChoiceField(
        queryset=License.objects.none(),
        error_messages={
            "required": _("Select at least one license to renew."),
            "invalid_choice": _("No such license in your organisation: %(value)s."),
            "invalid_pk_value": _("“%(pk)s” is not a license id."),
        },
    )
    years = years_field()
    idempotency_key = idempotency_field()

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        # Tenant-scoped: another tenant's license id is "no such license".
        self.fields["licenses"].queryset = License.objects.filter(tenant=tenant)


class RefundRequestForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class OrderFilterForm(forms.Form):
    """The order list's search, filters and sort, in the URL (GET)."""

    q = forms.CharField(label=_("Order number or reference"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All")), *Order.Status.choices]
    )
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", _("All")), *Order.Kind.choices]
    )
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        choices=[
            ("-created", _("Newest first")),
            ("created", _("Oldest first")),
            ("-total", _("Total, highest first")),
            ("total", _("Total, lowest first")),
        ],
    )
