"""Remote control pages (R8): who drives which device now, with the lease's time left;
ending a session (owners and admins, through licensing.services.control_release, audited);
a device's session history and its hours under remote control per day.

These live in licensing, not devices, because ending a session is licensing's service (the
cockpit's token check and the lease); the pages only read devices' rows.
"""

import datetime as dt

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from console.errors import ServiceError
from console.pages import can_change, change_required, member_required
from console.timeutils import business_date, start_of_business_day
from devices.models import ControlSession, FieldDevice
from licensing.services.control import control_release

HISTORY_PAGE_SIZE = 50
USAGE_DAYS = 30
# The chart's drawing box (SVG user units).
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 640, 180, 24


def _page(request) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 10_000))
    except ValueError:
        return 1


def _history(sessions, request) -> dict:
    """One page of ended or lapsed sessions, newest first, without counting them all."""
    page = _page(request)
    offset = (page - 1) * HISTORY_PAGE_SIZE
    rows = list(sessions[offset : offset + HISTORY_PAGE_SIZE + 1])
    return {
        "sessions": rows[:HISTORY_PAGE_SIZE],
        "page": page,
        "has_previous": page > 1,
        "has_next": len(rows) > HISTORY_PAGE_SIZE,
    }


def _live_rows(sessions, now: dt.datetime) -> list[dict]:
    return [
        {
            "session": s,
            "seconds_left": max(0, int((s.lease_expires_at - now).total_seconds())),
            "held_for": now - s.started_at,
        }
        for s in sessions
    ]


@member_required
@require_safe
def control_sessions(request):
    tenant = request.tenant
    now = timezone.now()
    live = (
        ControlSession.objects.live(now)
        .filter(device__tenant=tenant)
        .select_related("device", "cockpit")
        .order_by("device__serial")
    )
    history = (
        ControlSession.objects.filter(device__tenant=tenant)
        .filter(Q(ended_at__isnull=False) | Q(lease_expires_at__lte=now))
        .select_related("device", "cockpit")
        .order_by("-started_at", "-id")
    )
    context = {
        "live": _live_rows(live, now),
        "can_change": can_change(request),
        **_history(history, request),
    }
    return render(request, "licensing/session_list.html", context)


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def control_session_end(request, session_id: int):
    session = get_object_or_404(
        ControlSession.objects.select_related("device", "cockpit"),
        pk=session_id,
        device__tenant=request.tenant,
    )
    back = request.POST.get("next") or request.GET.get("next") or ""
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("control-sessions")
    if request.method == "POST":
        try:
            control_release(
                tenant=request.tenant, session_id=session.pk, trusted=True, actor=request.user
            )
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(
                request,
                _("The session of %(cockpit)s on %(serial)s is ended.")
                % {"cockpit": session.cockpit.name, "serial": session.device.serial},
            )
        return redirect(back)
    if not can_change(request):
        return redirect(back)
    return render(
        request,
        "console/confirm.html",
        {
            "title": _("End a remote control session"),
            "question": _(
                "End the session of %(cockpit)s on %(serial)s? The cockpit stops driving the "
                "device at once."
            )
            % {"cockpit": session.cockpit.name, "serial": session.device.serial},
            "action": reverse("control-session-end", args=[session.pk]),
            "hidden": [("next", back)],
            "confirm_label": _("End the session"),
            "cancel_url": back,
        },
    )


def usage_by_day(device: FieldDevice, *, now: dt.datetime, days: int = USAGE_DAYS):
    """Hours under remote control per Asia/Shanghai day, the last `days` days up to today:
    one query for every session that overlaps the window, split at midnights here. A
    session still open counts up to now or its lease's end, whichever is first."""
    today = business_date(now)
    first = today - dt.timedelta(days=days - 1)
    start = start_of_business_day(first)
    spans = ControlSession.objects.filter(device=device, started_at__lt=now).filter(
        Q(ended_at__gt=start) | Q(ended_at__isnull=True, lease_expires_at__gt=start)
    )
    seconds = {first + dt.timedelta(days=i): 0.0 for i in range(days)}
    for began, ended, lease in spans.values_list("started_at", "ended_at", "lease_expires_at"):
        end = min(ended or min(lease, now), now)
        at = max(began, start)
        while at < end:
            day = business_date(at)
            next_midnight = start_of_business_day(day + dt.timedelta(days=1))
            piece_end = min(end, next_midnight)
            if day in seconds:
                seconds[day] += (piece_end - at).total_seconds()
            at = piece_end
    return [(day, secs / 3600) for day, secs in seconds.items()]


def usage_chart(usage: list[tuple[dt.date, float]]) -> dict:
    """Bar geometry for the server-rendered SVG."""
    top = max([1.0, *(hours for _day, hours in usage)])
    inner_w = CHART_WIDTH - 2 * CHART_PAD
    inner_h = CHART_HEIGHT - 2 * CHART_PAD
    step = inner_w / max(1, len(usage))
    bars = []
    for i, (day, hours) in enumerate(usage):
        height = inner_h * hours / top
        bars.append(
            {
                "day": day,
                "hours": hours,
                "x": round(CHART_PAD + i * step + 1, 1),
                "y": round(CHART_PAD + inner_h - height, 1),
                "width": round(max(1.0, step - 2), 1),
                "height": round(height, 1),
                "label": i % 5 == 0 or i == len(usage) - 1,
                "label_x": round(CHART_PAD + i * step + step / 2, 1),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "pad": CHART_PAD,
        "baseline": CHART_HEIGHT - CHART_PAD,
        "label_y": CHART_HEIGHT - 6,
        "top": top,
        "bars": bars,
        "total": sum(hours for _day, hours in usage),
    }


@member_required
@require_safe
def device_sessions(request, device_id: int):
    device = get_object_or_404(FieldDevice, pk=device_id, tenant=request.tenant)
    now = timezone.now()
    # The history is the ended or lapsed sessions; a live one is in `live` above it.
    sessions = (
        ControlSession.objects.filter(device=device)
        .filter(Q(ended_at__isnull=False) | Q(lease_expires_at__lte=now))
        .select_related("cockpit")
        .order_by("-started_at", "-id")
    )
    live = _live_rows(
        ControlSession.objects.live(now).filter(device=device).select_related("cockpit", "device"),
        now,
    )
    context = {
        "device": device,
        "live": live,
        "chart": usage_chart(usage_by_day(device, now=now)),
        "days": USAGE_DAYS,
        "can_change": can_change(request),
        **_history(sessions, request),
    }
    return render(request, "licensing/session_device.html", context)
