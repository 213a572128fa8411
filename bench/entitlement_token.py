"""Benchmark: offline entitlement tokens (R14) — issuance against the bare anchor project,
served the same way, and the reference verifier's verifications per second on one core.

1. seeds a tenant of its own (the entitlement benchmark's device: cameras 1280×720, 640×480,
   640×480 and 2 bound licenses) and an operator key;
2. loads POST /api/v1/devices/{id}/entitlement-token (body `{}`) and the anchor with the same
   request in BENCH_ROUNDS alternating rounds (bench/httpbench.py: gunicorn, 2 sync workers,
   wrk 1 thread, 32 connections, the project with its default settings);
3. times tools/verify_token.verify on one issued token, in this process (one core), with the
   JWKS already fetched: what a gateway spends per token.

Targets: issuance median ratio ≥ 0.35 × the anchor's req/s, p99 < 50 ms, no non-2xx. The
verifier's rate is reported, with the arithmetic of how many gateways one web process serves
when each renews every TTL/2.

Run: `make bench`, or `.venv/bin/python bench/entitlement_token.py`.
"""

import json
import sys
import time

import httpbench as hb
from entitlement import seed

TARGET_RATIO = 0.35
TARGET_P99_MS = 50.0
VERIFY_SECONDS = 3.0


def verifier_rate(project_base: str, token: str) -> float:
    sys.path.insert(0, str(hb.PROJECT))
    from tools import verify_token

    status, content = hb.http("GET", project_base + "/.well-known/jwks.json", headers={})
    if status != 200:
        hb.fail(f"JWKS answered {status}")
    keys = verify_token.KeySet(fetch=lambda: json.loads(content))
    verify_token.verify(token, keys)
    count, started = 0, time.process_time()
    while time.process_time() - started < VERIFY_SECONDS:
        verify_token.verify(token, keys)
        count += 1
    return count / (time.process_time() - started)


def main() -> None:
    wrk_bin = hb.check_preconditions()
    hb.prepare_out()
    print(f"== seeding {hb.DATABASE_URL}", flush=True)
    device_id, _camera_ids, raw_key = seed()

    path = f"/api/v1/devices/{device_id}/entitlement-token"
    body = "{}"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {raw_key}"}
    script = hb.OUT / "token.lua"
    hb.lua_script(script, method="POST", headers=headers, body=body, paths=[path])

    anchor = project = None
    try:
        anchor = hb.anchor_server()
        project = hb.project_server()
        anchor.wait_ready("POST", path.replace("-token", ""), headers, body.encode())
        project.wait_ready("GET", "/healthz", {}, b"")
        status, content = hb.http("POST", project.base + path, headers=headers, body=b"{}")
        answer = json.loads(content) if status == 200 else {}
        if answer.get("entitlement", {}).get("code") != "VALID" or not answer.get("token"):
            hb.fail(f"entitlement-token answered {status}: {content[:300]!r}")
        rate = verifier_rate(project.base, answer["token"])
        # The anchor answers its entitlement path only: same method, headers and body.
        anchor_path = path.replace("-token", "")
        anchor_script = hb.OUT / "token-anchor.lua"
        hb.lua_script(anchor_script, method="POST", headers=headers, body=body, paths=[anchor_path])
        anchor_target = hb.Target("anchor", anchor, anchor_script, anchor_path)
        project_target = hb.Target("entitlement-token", project, script, path)
        hb.run_rounds("entitlement-token", wrk_bin, anchor_target, project_target)
    finally:
        for server in (project, anchor):
            if server is not None:
                server.stop()

    runs = sorted(run["rps"] for run in project_target.runs)
    issued = runs[len(runs) // 2]
    ttl = 900  # ENTITLEMENT_TOKEN_TTL's default
    print(
        f"reference verifier: {rate:,.0f} verifications/s on one core (tools/verify_token.py)\n"
        f"one web process (of {hb.WORKERS} workers here) issues about {issued / hb.WORKERS:,.0f} "
        f"tokens/s; a gateway renews every TTL/2 = {ttl // 2} s, so one worker serves about "
        f"{issued / hb.WORKERS * ttl / 2:,.0f} gateways"
    )
    hb.verdict(
        "entitlement-token",
        anchor_target,
        project_target,
        target_ratio=TARGET_RATIO,
        target_p99_ms=TARGET_P99_MS,
        notes=[
            f"request: POST {path} {body}, operator key; the entitlement benchmark's device",
            f"reference verifier: {rate:.0f} verifications/s on one core",
        ],
    )


if __name__ == "__main__":
    main()
