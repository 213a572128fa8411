"""Benchmark: the entitlement API against a bare Django view, under the same server.

Gateways call POST /api/v1/devices/{id}/entitlement every time a device starts streaming,
so it is the product's hot path. This script:

1. recreates a PostgreSQL database of its own (BENCH_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/fieldconsole_bench), migrates it and seeds a tenant,
   a device with 8 cameras and 20 bound licenses, and an operator API key;
2. starts gunicorn (2 sync workers, DEBUG off, SECRET_KEY set, ALLOWED_HOSTS=127.0.0.1,
   CONN_MAX_AGE=60, FIELD_CONSOLE_BENCH=1 to mount the bare view);
3. loads it with wrk, 32 connections for 20 s (after a short warm-up), first on a bare view
   that returns a constant JSON body (/api/v1/bench/bare, same middleware), then on the
   entitlement call with the same method, headers and body; and again, in BENCH_ROUNDS
   alternating rounds (default 3), so that both endpoints see the same machine: on a
   shared 2-CPU machine one round's ratio moves by several percent with what else runs;
4. prints req/s, p50 and p99 for both in every round, each round's ratio and the median
   ratio, and stops gunicorn.

Target: entitlement ≥ 0.5 × the bare view's throughput (the median of the rounds' ratios),
with p99 under 50 ms (in every round). The script exits non-zero when it cannot measure (no
wrk, server errors) or misses the target.

Run: `make bench`, or `.venv/bin/python bench/entitlement.py` from the project folder.
Options by environment: BENCH_DURATION (seconds, default 20), BENCH_CONNECTIONS (32),
BENCH_ROUNDS (3), BENCH_DATABASE_URL. wrk is a Debian package: `apt-get install -y wrk`.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fieldconsole_bench"
)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        sys.exit(
            f"bench/entitlement.py: {name} must be a whole number of at least 1, not {value!r}"
        )
    return int(value)


DURATION = _env_int("BENCH_DURATION", 20)
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 32)
ROUNDS = _env_int("BENCH_ROUNDS", 3)
WARMUP = 3
WORKERS = 2
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0

SERVER_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
    "ALLOWED_HOSTS": "127.0.0.1",
    "CONN_MAX_AGE": "60",
    "FIELD_CONSOLE_BENCH": "1",
    "LOG_LEVEL": "WARNING",
}


def fail(message: str) -> None:
    print(f"bench/entitlement.py: {message}", file=sys.stderr)
    sys.exit(1)


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        fail(
            "wrk is not installed. Install it (Debian/Ubuntu): "
            "sudo apt-get update && sudo apt-get install -y wrk"
        )
    return wrk


# --- database -------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        fail(f"unexpected database name {name!r}")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # WITH (FORCE): a gunicorn left over from an interrupted run may still be connected.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed() -> tuple[int, list[int], str]:
    """Migrate and seed through the project's own services; returns the device id, its
    camera ids and the operator key."""
    os.environ.update(SERVER_ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from console.models import ApiKey
    from console.services import api_key_create, tenant_create, user_get_or_create
    from devices.services import camera_create, device_create
    from licensing.services import licenses_bind_count, licenses_issue

    call_command("migrate", verbosity=0, interactive=False)
    owner = user_get_or_create(email="bench@example.com")
    tenant = tenant_create(name="Bench", slug="bench", owner=owner)
    device = device_create(tenant=tenant, serial="bench_truck", name="Bench truck")
    cameras = [
        camera_create(tenant=tenant, device=device, width=1280, height=720, priority=i)
        for i in range(8)
    ]
    licenses_issue(tenant=tenant, quantity=20, years=1, paid_at=timezone.now())
    licenses_bind_count(tenant=tenant, device=device, count=20)
    _key, raw = api_key_create(tenant=tenant, name="bench gateway", role=ApiKey.Role.OPERATOR)
    connections.close_all()
    return device.pk, [c.pk for c in cameras], raw


# --- server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = open(OUT / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(
        [
            str(gunicorn),
            "console.wsgi:application",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **SERVER_ENV},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one below
    )


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def request(url: str, *, body: bytes, headers: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            fail(f"gunicorn exited; see {OUT / 'gunicorn.log'}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    fail("gunicorn did not answer /healthz within 30 s")


# --- load -----------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(wrk_bin: str, url: str, script: Path, seconds: int) -> dict:
    command = [
        wrk_bin,
        f"--threads={WORKERS}",
        f"--connections={CONNECTIONS}",
        f"--duration={seconds}s",
        "--latency",
        f"--script={script}",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99):
        fail(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "raw": output,
    }


def lua(path: Path, body: str, headers: dict) -> None:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> list[str]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    cpu = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = found.group(1) if found else "?"
    return [
        f"date: {run('date', '--iso-8601=seconds')}",
        f"nproc: {run('nproc')}",
        f"cpu: {cpu}",
        f"kernel: {platform.release()}",
        "memory (free -h):",
        *("    " + line for line in run("free", "-h").splitlines()),
        f"python: {platform.python_version()}",
    ]


def main() -> None:
    wrk_bin = require_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("wrk-*.txt"):
        old.unlink()  # an earlier run's rounds
    print("== seeding", DATABASE_URL)
    recreate_database()
    device_id, camera_ids, raw_key = seed()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    entitlement_url = f"{base}/api/v1/devices/{device_id}/entitlement"
    bare_url = f"{base}/api/v1/bench/bare"
    body = json.dumps({"cameras": camera_ids})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {raw_key}"}
    script = OUT / "entitlement.lua"
    lua(script, body, headers)

    load_before = loadavg()
    server = start_gunicorn(port)
    try:
        wait_until_up(base, server)
        # The first grant marks the licenses served and stamps the key: steady state after.
        status, content = request(entitlement_url, body=body.encode(), headers=headers)
        if status != 200 or json.loads(content)["code"] != "VALID":
            fail(f"entitlement answered {status}: {content[:300]!r}")
        status, _content = request(bare_url, body=body.encode(), headers=headers)
        if status != 200:
            fail(f"the bare view answered {status}; is FIELD_CONSOLE_BENCH mounted?")

        rounds = []
        for number in range(1, ROUNDS + 1):
            results = {}
            for name, url in (("bare view", bare_url), ("entitlement", entitlement_url)):
                print(
                    f"== round {number}/{ROUNDS}, {name}: warm-up {WARMUP} s, "
                    f"then {DURATION} s x {CONNECTIONS} connections"
                )
                wrk(wrk_bin, url, script, WARMUP)
                results[name] = wrk(wrk_bin, url, script, DURATION)
                slug = name.replace(" ", "-")
                (OUT / f"wrk-{slug}-{number}.txt").write_text(results[name]["raw"])
                r = results[name]
                if r["non_2xx"] or r["socket_errors"] or r["rps"] <= 0:
                    # No point in more rounds: the figures would not mean what they say.
                    fail(
                        f"round {number}, {name}: {r['rps']:.0f} req/s, {r['non_2xx']} "
                        f"non-2xx responses {r['socket_errors']}; see bench/out/"
                    )
            rounds.append(results)
    finally:
        stop(server)

    print()
    print("\n".join(machine()))
    # Other work on the machine skews both figures; the load average shows how busy it was.
    print(f"load average before / after: {load_before} / {loadavg()}")
    print(f"server: gunicorn, {WORKERS} sync workers, PostgreSQL, DEBUG off, CONN_MAX_AGE=60")
    print(f"load: wrk --threads={WORKERS} --connections={CONNECTIONS} --duration={DURATION}s")
    print()
    print("| round | endpoint | req/s | p50 ms | p99 ms | non-2xx | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    ratios = []
    for number, results in enumerate(rounds, 1):
        ratio = results["entitlement"]["rps"] / results["bare view"]["rps"]
        ratios.append(ratio)
        for name, r in results.items():
            shown = f"{ratio:.2f}" if name == "entitlement" else ""
            print(
                f"| {number} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
                f"| {r['non_2xx']} | {shown} |"
            )
    ratio = statistics.median(ratios)
    p99 = max(results["entitlement"]["p99"] for results in rounds)
    print()
    print(
        f"entitlement / bare view throughput: median {ratio:.2f} of "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (target ≥ {TARGET_RATIO})"
    )
    print(f"entitlement p99, worst round: {p99:.2f} ms (target < {TARGET_P99_MS:.0f} ms)")
    if ratio < TARGET_RATIO or p99 >= TARGET_P99_MS:
        fail("target NOT met")
    print("target met")


if __name__ == "__main__":
    main()
