"""The language saved on the user (User.language) for the console, and the language
switcher that saves it.

LocaleMiddleware picks a language from the cookie or the browser; for a logged-in user
with a saved language this middleware (after AuthenticationMiddleware) overrides it, so
the console speaks the same language on every browser, as the user's emails do (R13).
A blank User.language keeps LocaleMiddleware's choice.
"""

from django.conf import settings
from django.utils import translation
from django.utils.translation import check_for_language
from django.views.i18n import set_language as django_set_language

from console.models import User


def _saved_language(request) -> str:
    user = getattr(request, "user", None)
    authenticated = isinstance(user, User) and user.is_authenticated
    if authenticated and user.language in dict(settings.LANGUAGES):
        return user.language
    return ""


class UserLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = _saved_language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


def set_language(request):
    """Django's set_language (cookie and redirect), and for a logged-in user the choice
    saved as their language, for the console and their emails."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    user = request.user
    if (
        request.method == "POST"
        and isinstance(user, User)
        and user.is_authenticated
        and language in dict(settings.LANGUAGES)
        and check_for_language(language)
        and user.language != language
    ):
        user.language = language
        user.save(update_fields=["language"])
    return response
