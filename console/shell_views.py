"""Small pages of the console's shell that belong to no feature."""

from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe


@require_safe
def favicon(request):
    """Browsers that ignore base.html's <link rel="icon"> still ask for /favicon.ico. The
    static URL is resolved per request: at import time the static manifest may not exist."""
    return HttpResponsePermanentRedirect(static("console/favicon.svg"))
