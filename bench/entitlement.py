"""Benchmark: the entitlement call against the bare anchor project, served the same way.

Gateways call POST /api/v1/devices/{id}/entitlement every time a device starts streaming,
so it is one of the two calls that grow with the fleet. This script:

1. seeds, through the project's services, a tenant of its own in the bench database: one
   device with cameras 1280×720, 640×480 and 640×480 (R1: 1.67 → 2 licenses), 2 licenses
   bound to it, and an operator API key;
2. starts the anchor (../shared/bench/bare) and the project under gunicorn, 2 sync workers
   each, the project with only DATABASE_URL, REDIS_URL, SECRET_KEY, DEBUG=false and
   ALLOWED_HOSTS set;
3. checks one call answers VALID with the three cameras granted (the first grant also marks
   the licenses served: steady state after), then loads both with the same request
   (POST, body `{}`, the key, JSON content type) in BENCH_ROUNDS alternating rounds;
4. prints req/s, p50 and p99 per round, each round's ratio and the median ratio.

Target: median ratio ≥ 0.45 × the anchor's req/s, p99 < 50 ms in every round, no non-2xx
answer. Exits non-zero when a target is missed or it cannot measure.

Run: `make bench`, or `.venv/bin/python bench/entitlement.py` from the project folder. Needs
wrk (`apt-get install -y wrk`), PostgreSQL and Redis on 127.0.0.1. Options: see
bench/httpbench.py (BENCH_ROUNDS, BENCH_DURATION, BENCH_DATABASE_URL, …).
"""

import json

import httpbench as hb

TARGET_RATIO = 0.45
TARGET_P99_MS = 50.0
CAMERAS = [(1280, 720), (640, 480), (640, 480)]
LICENSES = 2


def seed() -> tuple[int, list[int], str]:
    """Returns the device id, its camera ids and the operator key."""
    hb.django_setup()
    from django.db import connections
    from django.utils import timezone

    from console.models import ApiKey
    from console.services import api_key_create, tenant_create, user_get_or_create
    from devices.services import camera_create, device_create
    from licensing.services import licenses_bind_count, licenses_issue

    run = hb.run_id()
    owner = user_get_or_create(email="bench@example.com")
    tenant = tenant_create(name=f"Bench {run}", slug=f"bench-ent-{run}", owner=owner)
    device = device_create(tenant=tenant, serial="bench_truck", name="Bench truck")
    cameras = [
        camera_create(tenant=tenant, device=device, width=width, height=height)
        for width, height in CAMERAS
    ]
    licenses_issue(tenant=tenant, quantity=LICENSES, years=1, paid_at=timezone.now())
    licenses_bind_count(tenant=tenant, device=device, count=LICENSES)
    _key, raw = api_key_create(tenant=tenant, name="bench gateway", role=ApiKey.Role.OPERATOR)
    connections.close_all()
    return device.pk, [camera.pk for camera in cameras], raw


def main() -> None:
    wrk_bin = hb.check_preconditions()
    hb.prepare_out()
    print(f"== seeding {hb.DATABASE_URL}", flush=True)
    device_id, camera_ids, raw_key = seed()

    path = f"/api/v1/devices/{device_id}/entitlement"
    body = "{}"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {raw_key}"}
    script = hb.OUT / "entitlement.lua"
    hb.lua_script(script, method="POST", headers=headers, body=body, paths=[path])

    anchor = project = None
    try:
        anchor = hb.anchor_server()
        project = hb.project_server()
        anchor.wait_ready("POST", path, headers, body.encode())
        project.wait_ready("GET", "/healthz", {}, b"")
        status, content = hb.http("POST", project.base + path, headers=headers, body=b"{}")
        answer = json.loads(content) if status == 200 else {}
        if answer.get("code") != "VALID" or sorted(answer["granted_cameras"]) != camera_ids:
            hb.fail(f"entitlement answered {status}: {content[:300]!r}")

        anchor_target = hb.Target("anchor", anchor, script, path)
        project_target = hb.Target("entitlement", project, script, path)
        hb.run_rounds("entitlement", wrk_bin, anchor_target, project_target)
    finally:
        for server in (project, anchor):
            if server is not None:
                server.stop()

    hb.verdict(
        "entitlement",
        anchor_target,
        project_target,
        target_ratio=TARGET_RATIO,
        target_p99_ms=TARGET_P99_MS,
        notes=[
            f"request: POST {path} {body}, operator key; device with cameras "
            + ", ".join(f"{w}×{h}" for w, h in CAMERAS)
            + f" and {LICENSES} bound licenses"
        ],
    )


if __name__ == "__main__":
    main()
