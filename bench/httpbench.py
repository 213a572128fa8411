"""Shared machinery of the HTTP benchmarks (bench/entitlement.py, bench/heartbeat.py).

Each benchmark measures one project endpoint against the bare anchor project
(../shared/bench/bare beside the project folder: a minimal Django project, no database, one
view answering a constant JSON body at POST /api/v1/devices/<id>/entitlement), served the
same way and in the same run:

- both under gunicorn with 2 sync workers on 127.0.0.1, started with the same arguments;
- the project with only DATABASE_URL (local PostgreSQL), REDIS_URL (local Redis),
  SECRET_KEY, DEBUG=false and ALLOWED_HOSTS in its environment, everything else at its
  default: a setting a deployment has to know about to be fast is a bug, not a tuning step;
- load from wrk, 1 thread, 32 connections, BENCH_DURATION seconds per measured run (at least
  15 for the figures to count) after a 3 s warm-up, anchor then project in each of
  BENCH_ROUNDS alternating rounds, so both see the same machine;
- the same method, headers and body for both, through the same kind of wrk Lua script.

The verdict is the median of the rounds' ratios (project req/s ÷ anchor req/s), the worst
round's p99 and the count of non-2xx answers and socket errors (none allowed).

This module only helps the scripts beside it; running it measures nothing.

Environment: BENCH_ROUNDS (3), BENCH_DURATION (seconds, 20), BENCH_CONNECTIONS (32),
BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/fc_bench: created if missing, never
dropped unless BENCH_FRESH_DB=1), BENCH_REDIS_URL (redis://127.0.0.1:6379/15),
BENCH_ANCHOR_DIR (the anchor project's folder), BENCH_PROJECT_DIR (the project checkout to
measure, default the one this file is in; it uses this interpreter's virtualenv),
BENCH_CODE_LABEL (what to print as the code measured when that folder is not a git checkout).
"""

from __future__ import annotations

import contextlib
import datetime as dt
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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(os.environ.get("BENCH_PROJECT_DIR", ROOT)).resolve()
ANCHOR_DIR = Path(
    os.environ.get("BENCH_ANCHOR_DIR", ROOT.parent / "shared" / "bench" / "bare")
).resolve()
OUT = ROOT / "bench" / "out"
SCRIPT = f"bench/{Path(sys.argv[0]).name}"

WORKERS = 2
THREADS = 1
WARMUP = 3
MIN_DURATION = 15  # seconds per measured run for the figures to count
WRK_TIMEOUT = "10s"  # a slow answer is counted in the latencies, not dropped as a timeout


def fail(message: str) -> None:
    sys.stdout.flush()
    print(f"{SCRIPT}: {message}", file=sys.stderr)
    sys.exit(1)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or int(value) < 1:
        fail(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


DURATION = _env_int("BENCH_DURATION", 20)
ROUNDS = _env_int("BENCH_ROUNDS", 3)
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 32)
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fc_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

# The whole of the project's configuration under measurement. Nothing else is passed.
PROJECT_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "127.0.0.1",
}
# What a process needs to start at all; the caller's other variables (a CONN_MAX_AGE
# exported in the shell, say) must not reach either server.
_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def base_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED if name in os.environ}


# --- preconditions, database, Django -----------------------------------------------------------


def check_preconditions() -> str:
    """Returns wrk's path; fails with what to do when something is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        fail("wrk is not installed (Debian/Ubuntu: sudo apt-get install -y wrk)")
    if not (Path(sys.executable).parent / "gunicorn").exists():
        fail(f"no gunicorn beside {sys.executable}; run with the project's .venv/bin/python")
    if not (ANCHOR_DIR / "bare_wsgi.py").exists():
        fail(
            f"the anchor project is not at {ANCHOR_DIR} (a clone has ../shared beside the "
            "project folder; BENCH_ANCHOR_DIR points elsewhere)"
        )
    if not (PROJECT / "manage.py").exists():
        fail(f"no project at {PROJECT} (BENCH_PROJECT_DIR)")
    if (PROJECT / ".env").exists():
        # console/settings.py reads it: its values would reach the server under measurement.
        fail(f"{PROJECT / '.env'} exists; move it aside: the benchmark measures the defaults")
    return wrk


def ensure_database() -> None:
    """Create the bench database if it is missing. It is not dropped between runs (one run
    never breaks another's); each run seeds a tenant of its own. BENCH_FRESH_DB=1 drops it
    first, e.g. after a migration was rewritten in place."""
    import psycopg
    from psycopg import errors

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        fail(f"unexpected database name {name!r} in BENCH_DATABASE_URL")
    admin_url = parts._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if os.environ.get("BENCH_FRESH_DB") == "1":
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if exists.fetchone() is None:
                # A run that started at the same moment may have made it already.
                with contextlib.suppress(errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        fail(f"PostgreSQL is not reachable at {admin_url}: {exc}")


def django_setup() -> None:
    """Django in this process, on the bench database, migrated: seeding goes through the
    project's own services."""
    ensure_database()
    os.environ.update(PROJECT_ENV)
    os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
    sys.path.insert(0, str(PROJECT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def run_id() -> str:
    """A suffix for this run's tenant slug, so runs on one database never collide."""
    return dt.datetime.now().strftime("%Y%m%d%H%M%S")


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One gunicorn with 2 sync workers on 127.0.0.1, in its own process group."""

    def __init__(self, name: str, app: str, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = OUT / f"gunicorn-{name}.log"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.command = [str(gunicorn), "-w", str(WORKERS), "-b", f"127.0.0.1:{self.port}", app]
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"the {self.name} server exited; see {self.log_path}")
            try:
                status, _body = http(method, self.base + path, headers=headers, body=body)
                if 200 <= status < 300:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        fail(f"the {self.name} server did not answer {method} {path} with a 2xx within 30 s")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def anchor_server() -> Server:
    return Server("anchor", "bare_wsgi:application", ANCHOR_DIR, base_env())


def project_server() -> Server:
    return Server("project", "console.wsgi:application", PROJECT, {**base_env(), **PROJECT_ENV})


def http(
    method: str, url: str, *, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- load --------------------------------------------------------------------------------------


def lua_script(
    path: Path, *, method: str, headers: dict[str, str], body: str, paths: list[str]
) -> None:
    """A wrk script that sends `method` with these headers and body, rotating over `paths`.
    Anchor and project both get a script of this shape, so wrk spends the same per request."""
    lines = [
        f"wrk.method = {json.dumps(method)}",
        f"wrk.body = {json.dumps(body)}",
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
        "local paths = {" + ", ".join(json.dumps(p) for p in paths) + "}",
        "local requests = {}",
        "local n = 0",
        "function init(args)",
        "  for i, p in ipairs(paths) do requests[i] = wrk.format(nil, p) end",
        "end",
        "function request()",
        "  n = n % #requests + 1",
        "  return requests[n]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        fail(f"unexpected latency {text!r} in wrk's output")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk(wrk_bin: str, url: str, script: Path, seconds: int) -> dict:
    command = [
        wrk_bin,
        f"--threads={THREADS}",
        f"--connections={CONNECTIONS}",
        f"--duration={seconds}s",
        f"--timeout={WRK_TIMEOUT}",
        "--latency",
        f"--script={script}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if done.returncode != 0 or not (rps and p50 and p99):
        fail(f"could not read wrk's output:\n{output}\n{done.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "raw": output,
    }


@dataclass
class Target:
    """One side of a comparison: a server, the path wrk starts from, its Lua script, and
    what to do right before and after each of its measured runs (start and end sessions)."""

    label: str
    server: Server
    script: Path
    path: str
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None
    runs: list[dict] = field(default_factory=list)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_rounds(name: str, wrk_bin: str, anchor: Target, project: Target) -> None:
    """BENCH_ROUNDS rounds, each the anchor then the project: warm-up, then one measured run."""
    for old in OUT.glob(f"wrk-{name}-*.txt"):
        old.unlink()  # an earlier run's rounds
    for number in range(1, ROUNDS + 1):
        for target in (anchor, project):
            print(
                f"== round {number}/{ROUNDS}, {target.label}: warm-up {WARMUP} s, then "
                f"{DURATION} s x {CONNECTIONS} connections (load {loadavg()})",
                flush=True,
            )
            if target.before:
                target.before()
            url = target.server.base + target.path
            wrk(wrk_bin, url, target.script, WARMUP)
            result = wrk(wrk_bin, url, target.script, DURATION)
            if target.after:
                target.after()
            result["load_after"] = loadavg()
            slug = target.server.name
            (OUT / f"wrk-{name}-{slug}-{number}.txt").write_text(result.pop("raw"))
            target.runs.append(result)
            print(
                f"   {result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                f"p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']} "
                f"{result['socket_errors']}",
                flush=True,
            )
            if result["rps"] <= 0:
                fail(f"{target.label} served nothing; see bench/out/")


# --- report and verdict ------------------------------------------------------------------------


def _run(*command: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=PROJECT)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def code_version() -> str:
    commit = _run("git", "rev-parse", "--short", "HEAD")
    if commit == "?":
        # e.g. a `git archive` of an earlier commit, measured for comparison
        return os.environ.get("BENCH_CODE_LABEL", "not a git checkout")
    dirty = _run("git", "status", "--porcelain", "--untracked-files=no")
    return commit + (" + uncommitted changes" if dirty not in ("", "?") else "")


def machine() -> dict[str, str]:
    model = re.search(r"Model name:\s*(.+)", _run("lscpu"))
    memory = re.search(r"^Mem:\s+(\S+)", _run("free", "-h"), re.M)
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": _run("nproc"),
        "cpu": model.group(1).strip() if model else "?",
        "memory": memory.group(1) if memory else "?",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "project": str(PROJECT),
        "code": code_version(),
    }


def verdict(
    name: str,
    anchor: Target,
    project: Target,
    *,
    target_ratio: float,
    target_p99_ms: float,
    notes: list[str],
) -> None:
    """Print the table and the verdict, keep them in bench/out/<name>.json, and exit non-zero
    when a target is missed, an answer was not 2xx, or the runs were too short to count."""
    info = machine()
    print()
    for key, value in info.items():
        print(f"{key}: {value}")
    for note in notes:
        print(note)
    print(
        f"servers: gunicorn -w {WORKERS} (sync) on 127.0.0.1; project environment: "
        + ", ".join(sorted(PROJECT_ENV))
    )
    print(
        f"load: wrk --threads={THREADS} --connections={CONNECTIONS} --duration={DURATION}s "
        f"--timeout={WRK_TIMEOUT}, {WARMUP} s warm-up before each run"
    )
    print()
    print("| round | server | req/s | p50 ms | p99 ms | non-2xx | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    ratios = []
    for number, (a, p) in enumerate(zip(anchor.runs, project.runs, strict=True), 1):
        ratio = p["rps"] / a["rps"]
        ratios.append(ratio)
        for target, r, shown in ((anchor, a, ""), (project, p, f"{ratio:.2f}")):
            print(
                f"| {number} | {target.label} | {r['rps']:.0f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['non_2xx']} | {shown} |"
            )
    median = statistics.median(ratios)
    p99 = max(r["p99_ms"] for r in project.runs)
    anchor_p99 = max(r["p99_ms"] for r in anchor.runs)
    bad_answers = sum(r["non_2xx"] for r in anchor.runs + project.runs)
    socket_errors = [r["socket_errors"] for r in anchor.runs + project.runs if r["socket_errors"]]
    print()
    print(
        f"{project.label} / anchor throughput: median {median:.2f} of "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (target ≥ {target_ratio:.2f})"
    )
    print(
        f"{project.label} p99, worst round: {p99:.2f} ms (target < {target_p99_ms:.0f} ms); "
        f"anchor p99, worst round: {anchor_p99:.2f} ms"
    )

    missed = []
    if median < target_ratio:
        missed.append(f"median ratio {median:.2f} < {target_ratio:.2f}")
    if p99 >= target_p99_ms:
        missed.append(f"p99 {p99:.2f} ms ≥ {target_p99_ms:.0f} ms")
    if bad_answers:
        missed.append(f"{bad_answers} non-2xx answers")
    if socket_errors:
        missed.append("socket errors: " + "; ".join(socket_errors))
    if DURATION < MIN_DURATION:
        missed.append(f"runs of {DURATION} s are too short to count (at least {MIN_DURATION})")

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "notes": notes,
                "rounds": ROUNDS,
                "duration_s": DURATION,
                "connections": CONNECTIONS,
                "anchor": anchor.runs,
                "project": project.runs,
                "ratios": ratios,
                "median_ratio": median,
                "p99_ms_worst": p99,
                "targets": {"ratio": target_ratio, "p99_ms": target_p99_ms},
                "missed": missed,
            },
            indent=2,
        )
    )
    if missed:
        fail("target NOT met: " + "; ".join(missed) + f" (details in bench/out/{name}.json)")
    print(f"target met (details in bench/out/{name}.json)")


def prepare_out() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
