"""A confirmation step for destructive actions (unbinding a license, revoking a key,
withdrawing an application…) that needs no JavaScript and no change to the forms that post
them: the first POST, without `confirmed`, answers a page that asks, carrying the posted
fields along; its button posts them again with `confirmed=1`, and only then does the view
act."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

CONFIRMED_FIELD = "confirmed"


def confirmation_page(
    request: HttpRequest,
    *,
    title: str,
    question: str,
    confirm_label: str,
    cancel_url: str,
    detail: str = "",
) -> HttpResponse | None:
    """None once the user confirmed; else the page asking them (the caller returns it)."""
    if request.method == "POST" and request.POST.get(CONFIRMED_FIELD) == "1":
        return None
    hidden = [
        (name, value)
        for name in request.POST
        if name not in ("csrfmiddlewaretoken", CONFIRMED_FIELD)
        for value in request.POST.getlist(name)
    ]
    hidden.append((CONFIRMED_FIELD, "1"))
    return render(
        request,
        "console/confirm.html",
        {
            "title": title,
            "question": question,
            "detail": detail,
            "action": request.path,
            "hidden": hidden,
            "confirm_label": confirm_label,
            "cancel_url": cancel_url,
        },
    )
