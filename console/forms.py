"""Forms for the console pages and the beta review admin. They validate input; the
services in console.services / console.beta_services make the changes."""

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from console.beta_services import REASON_MAX_LENGTH
from console.models import ApiKey, BetaApplication, Tenant, User, slug_validator


class EmailAuthenticationForm(AuthenticationForm):
    """The login form; addresses are stored lower-cased, so compare them that way."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("Email address")
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autofocus": True, "autocomplete": "email"}
        )

    def clean_username(self):
        return User.objects.normalize_email(self.cleaned_data.get("username", "")).lower()


class SignUpForm(BaseUserCreationForm):
    """Email (the login, unique whatever its case) and a password checked by
    AUTH_PASSWORD_VALIDATORS."""

    class Meta:
        model = User
        fields = ("email", "full_name")
        widgets = {"email": forms.EmailInput(attrs={"autocomplete": "email"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["full_name"].required = True
        self.fields["full_name"].label = _("Your name")

    def clean_email(self):
        # No "already registered" error: it would tell anyone whether an address has an
        # account. console.signup answers both the same and emails the owner instead.
        return User.objects.normalize_email(self.cleaned_data["email"]).lower()

    def validate_unique(self):
        pass  # see clean_email; the account is made only when the emailed link is used


class BetaApplicationForm(forms.ModelForm):
    class Meta:
        model = BetaApplication
        fields = (
            "company_name",
            "contact_name",
            "phone",
            "email",
            "industry",
            "scenario",
            "expected_devices",
            "cameras_per_device",
            "resolution",
            "language",
        )
        widgets = {
            "scenario": forms.Textarea(attrs={"rows": 5}),
            "expected_devices": forms.NumberInput(attrs={"min": 1, "max": 100000}),
            "cameras_per_device": forms.NumberInput(attrs={"min": 1, "max": 8}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The model default would pre-select nothing; make the choice explicit.
        self.fields["industry"].choices = [("", "---------"), *BetaApplication.Industry.choices]
        self.fields["resolution"].choices = [
            ("", "---------"),
            *BetaApplication.Resolution.choices,
        ]


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    role = forms.ChoiceField(
        label=_("Role"), choices=ApiKey.Role.choices, initial=ApiKey.Role.OPERATOR
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("This field is required."), code="required")
        return name


class ReasonForm(forms.Form):
    """A reviewer's transition: the reason goes to the audit trail (and, for a rejection,
    to the applicant)."""

    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_(
            "Recorded in the audit trail. A rejection's reason is also sent to the applicant."
        ),
    )

    def __init__(self, *args, reason_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required


class ConfirmApplicationForm(forms.Form):
    """R9: confirming asks for the contract price (R2) and the new tenant's slug."""

    contract_unit_price = forms.DecimalField(
        label=_("Contract unit price (CNY per license-year)"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
    )
    slug = forms.CharField(
        label=_("Tenant slug"),
        max_length=50,
        validators=[slug_validator],
        help_text=_("Lowercase letters, digits and hyphens; unique."),
    )
    reason = forms.CharField(
        label=_("Note for the audit trail"),
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def __init__(self, *args, application: BetaApplication | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contract_unit_price"].initial = settings.LICENSE_LIST_PRICE
        if application is not None:
            self.fields["slug"].initial = slugify(application.company_name)[:50].strip("-")

    def clean_slug(self):
        slug = self.cleaned_data["slug"].strip().lower()
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("This slug is taken; choose another."), code="taken")
        return slug
