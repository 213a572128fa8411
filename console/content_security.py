"""The Content-Security-Policy on pages only (django-csp, configured in settings).

The JSON API under /api/v1/ is no page: its answers are application/json with nosniff and
X-Frame-Options DENY, never rendered as a document. django-csp's own EXCLUDE_URL_PREFIXES
leaves the header off there but still builds the policy for every answer, which cost the
gateways' calls about 6 % of their time (bench/RESULTS.md, issue 13); this subclass skips
the work for the API. Every other answer, the API docs included, gets the policy as
configured."""

from csp.middleware import CSPMiddleware

API_PREFIX = "/api/v1/"


class PageCSPMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if request.path_info.startswith(API_PREFIX):
            return response
        return super().process_response(request, response)
