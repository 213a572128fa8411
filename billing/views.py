"""Billing pages: the printable receipt of a paid order."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors


@require_GET
@login_required
def order_receipt(request, order_id: int):
    """A paid order's receipt, for members of its tenant; anyone else gets a 404."""
    order = selectors.order_for_receipt(request.user, order_id)
    if order is None:
        raise Http404
    lines = selectors.receipt_lines(order)
    return render(
        request,
        "billing/receipt.html",
        {
            "order": order,
            "payment": getattr(order, "payment", None),
            "lines": lines,
        },
    )
