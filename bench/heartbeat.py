"""Benchmark: control heartbeats over 200 live sessions against the bare anchor project.

Every cockpit sends POST /api/v1/control-sessions/{id}/heartbeat every few seconds while it
drives (R8), so this call grows with the fleet. This script:

1. seeds, through the project's services, a tenant of its own in the bench database: 200
   devices, each with one 1280×720 camera and one bound license, 200 cockpits, and an admin
   API key (an admin key may beat any session of its tenant without the session's
   X-Control-Token, so the script needs no per-session credentials);
2. starts the anchor (../shared/bench/bare) and the project under gunicorn, 2 sync workers
   each, the project with only DATABASE_URL, REDIS_URL, SECRET_KEY, DEBUG=false and
   ALLOWED_HOSTS set;
3. in each of BENCH_ROUNDS alternating rounds: loads the anchor, then starts the 200 sessions
   through the API (POST /api/v1/devices/{id}/control-session, one cockpit per device),
   loads the project with wrk rotating its heartbeats over the 200 sessions, and ends the
   sessions (DELETE) after the run;
4. prints req/s, p50 and p99 per round, each round's ratio and the median ratio.

The anchor answers only POST /api/v1/devices/<id>/entitlement, so its side of the ratio is
that path (rotating over the 200 device ids), with the same method, headers and empty body
as the heartbeats.

Target: median ratio ≥ 0.30 × the anchor's req/s, p99 < 50 ms in every round, no non-2xx
answer (a lapsed session would answer 410). Exits non-zero when a target is missed or it
cannot measure.

Run: `make bench`, or `.venv/bin/python bench/heartbeat.py` from the project folder. Needs
wrk (`apt-get install -y wrk`), PostgreSQL and Redis on 127.0.0.1. Options: see
bench/httpbench.py (BENCH_ROUNDS, BENCH_DURATION, BENCH_DATABASE_URL, …).
"""

import json

import httpbench as hb

TARGET_RATIO = 0.30
TARGET_P99_MS = 50.0
DEVICES = 200


def seed() -> tuple[list[tuple[int, int]], str]:
    """Returns (device id, cockpit id) pairs and the admin key."""
    hb.django_setup()
    from django.db import connections
    from django.utils import timezone

    from console.models import ApiKey
    from console.services import api_key_create, tenant_create, user_get_or_create
    from devices.services import camera_create, cockpit_create, device_create
    from licensing.services import licenses_bind_count, licenses_issue

    run = hb.run_id()
    owner = user_get_or_create(email="bench@example.com")
    tenant = tenant_create(name=f"Bench {run}", slug=f"bench-hb-{run}", owner=owner)
    licenses_issue(tenant=tenant, quantity=DEVICES, years=1, paid_at=timezone.now())
    pairs = []
    for number in range(DEVICES):
        device = device_create(tenant=tenant, serial=f"bench_{number:03d}")
        camera_create(tenant=tenant, device=device, width=1280, height=720)
        licenses_bind_count(tenant=tenant, device=device, count=1)
        cockpit = cockpit_create(tenant=tenant, name=f"Cockpit {number:03d}")
        pairs.append((device.pk, cockpit.pk))
    _key, raw = api_key_create(tenant=tenant, name="bench cockpits", role=ApiKey.Role.ADMIN)
    connections.close_all()
    return pairs, raw


class Sessions:
    """Starts the 200 sessions right before a measured run (a lease lapses 30 s after its
    last beat, and the anchor's run comes in between) and ends them after it."""

    def __init__(self, server: hb.Server, pairs, headers: dict[str, str], script) -> None:
        self.server, self.pairs, self.headers, self.script = server, pairs, headers, script
        self.ids: list[int] = []

    def start(self) -> None:
        self.ids = []
        for device_id, cockpit_id in self.pairs:
            status, content = hb.http(
                "POST",
                f"{self.server.base}/api/v1/devices/{device_id}/control-session",
                headers={**self.headers, "Content-Type": "application/json"},
                body=json.dumps({"cockpit": cockpit_id}).encode(),
            )
            if status != 201:
                hb.fail(f"starting a session on device {device_id}: {status} {content[:300]!r}")
            self.ids.append(json.loads(content)["id"])
        paths = [f"/api/v1/control-sessions/{pk}/heartbeat" for pk in self.ids]
        hb.lua_script(self.script, method="POST", headers=self.headers, body="", paths=paths)
        status, content = hb.http("POST", self.server.base + paths[0], headers=self.headers)
        if status != 200:
            hb.fail(f"a heartbeat answered {status}: {content[:300]!r}")

    def end(self) -> None:
        for pk in self.ids:
            status, content = hb.http(
                "DELETE", f"{self.server.base}/api/v1/control-sessions/{pk}", headers=self.headers
            )
            if status != 204:
                hb.fail(f"ending session {pk}: {status} {content[:300]!r}")


def main() -> None:
    wrk_bin = hb.check_preconditions()
    hb.prepare_out()
    print(f"== seeding {hb.DATABASE_URL}", flush=True)
    pairs, raw_key = seed()

    headers = {"Authorization": f"Bearer {raw_key}"}
    anchor_paths = [f"/api/v1/devices/{device_id}/entitlement" for device_id, _ in pairs]
    anchor_script = hb.OUT / "heartbeat-anchor.lua"
    hb.lua_script(anchor_script, method="POST", headers=headers, body="", paths=anchor_paths)
    project_script = hb.OUT / "heartbeat.lua"

    anchor = project = None
    try:
        anchor = hb.anchor_server()
        project = hb.project_server()
        anchor.wait_ready("POST", anchor_paths[0], headers, b"")
        project.wait_ready("GET", "/healthz", {}, b"")
        sessions = Sessions(project, pairs, headers, project_script)

        anchor_target = hb.Target("anchor", anchor, anchor_script, anchor_paths[0])
        project_target = hb.Target(
            "heartbeat",
            project,
            project_script,
            "/api/v1/control-sessions/0/heartbeat",  # wrk needs a URL; the script picks paths
            before=sessions.start,
            after=sessions.end,
        )
        hb.run_rounds("heartbeat", wrk_bin, anchor_target, project_target)
    finally:
        for server in (project, anchor):
            if server is not None:
                server.stop()

    hb.verdict(
        "heartbeat",
        anchor_target,
        project_target,
        target_ratio=TARGET_RATIO,
        target_p99_ms=TARGET_P99_MS,
        notes=[
            f"request: POST /api/v1/control-sessions/{{id}}/heartbeat over {DEVICES} live "
            "sessions (one per device, each with one 1280×720 camera and one bound license), "
            "admin key, empty body",
            "anchor: POST /api/v1/devices/{id}/entitlement over the same device ids, same "
            "headers and body (the anchor's only route)",
        ],
    )


if __name__ == "__main__":
    main()
