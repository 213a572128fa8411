"""Forms of the device pages. They check input and give clear messages; devices.services
makes the change and checks again (a form is never the only guard)."""

import json

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from devices.models import (
    MAX_CAMERAS_PER_DEVICE,
    MAX_PIXELS,
    MAX_SIDE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    serial_validator,
)

# The resolutions cameras push most often; "custom" takes the width and height typed in.
RESOLUTION_PRESETS: dict[str, tuple[int, int]] = {
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
    "vga": (640, 480),
}
CUSTOM = "custom"
PRESET_CHOICES = [
    (CUSTOM, _("Custom (type width and height)")),
    ("720p", _("720p (1280 × 720)")),
    ("1080p", _("1080p (1920 × 1080)")),
    ("1440p", _("1440p (2560 × 1440)")),
    ("4k", _("4K (3840 × 2160)")),
    ("vga", _("VGA (640 × 480)")),
]


def side_field(label) -> forms.IntegerField:
    """One side of a camera's picture (R1: 1 to 7680 pixels)."""
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=1,
        max_value=MAX_SIDE,
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_SIDE, "step": 1}),
    )


def check_pixels(form: forms.Form, width: int | None, height: int | None, field: str) -> None:
    """R1: at most 7680 × 4320 pixels in all, whatever the two sides."""
    if width is not None and height is not None and width * height > MAX_PIXELS:
        form.add_error(
            field,
            _(
                "%(width)d × %(height)d is %(pixels)s pixels; a camera pushes at most "
                "7680 × 4320 (33,177,600) pixels."
            )
            % {"width": width, "height": height, "pixels": f"{width * height:,}"},
        )


class DeviceForm(forms.Form):
    serial = forms.CharField(
        label=_("Serial"),
        max_length=18,
        validators=[serial_validator],
        help_text=_("Unique in your organisation: 1–18 lowercase letters, digits or _."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    max_concurrent_streams = forms.IntegerField(
        label=_("Max concurrent streams"),
        required=False,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CAMERAS_PER_DEVICE)],
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_CAMERAS_PER_DEVICE}),
        help_text=_(
            "When set to k, only the k largest streams count. Empty: every enabled camera "
            "may stream at once."
        ),
    )


class CameraForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, required=False)
    preset = forms.ChoiceField(
        label=_("Resolution"),
        choices=PRESET_CHOICES,
        initial=CUSTOM,
        help_text=_("A preset sets width and height; choose Custom to type them."),
        # static/console/camera-presets.js reads the sizes from here to fill the boxes.
        widget=forms.Select(attrs={"data-resolution-presets": json.dumps(RESOLUTION_PRESETS)}),
    )
    width = side_field(_("Width (px)"))
    height = side_field(_("Height (px)"))
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True, label_suffix="")
    priority = forms.IntegerField(
        label=_("Priority"),
        initial=0,
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        help_text=_("Higher is kept first when service is degraded."),
    )

    def clean(self):
        data = super().clean()
        preset = data.get("preset")
        if preset in RESOLUTION_PRESETS:
            # Without JavaScript the width and height boxes may still hold older values;
            # the preset the user picked is what they meant.
            data["width"], data["height"] = RESOLUTION_PRESETS[preset]
            self.errors.pop("width", None)
            self.errors.pop("height", None)
        elif preset == CUSTOM:
            for side in ("width", "height"):
                if data.get(side) is None and side not in self.errors:
                    self.add_error(side, _("Enter the width and height, or pick a preset."))
            check_pixels(self, data.get("width"), data.get("height"), "width")
        return data

    def service_values(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "width": data["width"],
            "height": data["height"],
            "enabled": data["enabled"],
            "priority": data["priority"],
        }


def camera_initial(camera) -> dict:
    """The edit form's starting values: the preset that matches the camera, else Custom."""
    preset = next(
        (key for key, size in RESOLUTION_PRESETS.items() if size == (camera.width, camera.height)),
        CUSTOM,
    )
    return {
        "name": camera.name,
        "preset": preset,
        "width": camera.width,
        "height": camera.height,
        "enabled": camera.enabled,
        "priority": camera.priority,
    }
