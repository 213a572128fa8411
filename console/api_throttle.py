"""API rate limit per key (CONTRACT: API_RATE_LIMIT, off by default).

DRF's SimpleRateThrottle on Django's cache: Redis in production, so every web process counts
against the same limit. Console sessions on the browsable API are not API keys and are not
limited here (the login rate limits cover people)."""

from rest_framework.throttling import SimpleRateThrottle

from console.api_auth import KeyRef


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view):
        key = request.auth
        if not isinstance(key, KeyRef):
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
