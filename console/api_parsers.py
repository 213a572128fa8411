"""The API's JSON parser: DRF's, and a body nested too deeply for Python's JSON parser is a
400 like any other malformed body (json raises RecursionError there, not ValueError, which
DRF's parser would let through as a 500)."""

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(_("JSON parse error - the body is nested too deeply.")) from exc
