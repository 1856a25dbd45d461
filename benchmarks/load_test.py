"""Bounded load test: concurrent clients sending plan requests to the API on 127.0.0.1.

    python benchmarks/load_test.py [--clients 20] [--requests 2000] [--max-seconds 240] [--skip-celery]

Cases:
  embedded  `uvicorn --factory service.app:create_app` without REDIS_URL (tasks in process, SQLite)
  celery    the same API with Redis (a redis-server started here) and one solo Celery worker

Both run as production would: API keys on (one tenant; every request carries its key), the
default model (models/assets/default.pt) and the bundled Sentinel-2 sample tile
(models/assets/sample_lr_tile.tif). Everything listens on 127.0.0.1 only. The run is bounded
by a request count and a wall-clock limit per case; a request that is not 201 (or that fails
at the transport) is an error. Writes benchmarks/results/load_test.json (a flat map
case -> metrics, plus date, commit, command) and its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from plan_latency import Server, start_redis, wait_http  # noqa: E402
from results_md import DEFAULT_CHECKPOINT, RESULTS_MD, Benchmark, free_port, git_commit, write_section  # noqa: E402  (benchmarks/ is on sys.path)

from service.security import hash_key, new_key  # noqa: E402

HOST = "127.0.0.1"
CHECKPOINT = DEFAULT_CHECKPOINT
TILE = REPO / "models" / "assets" / "sample_lr_tile.tif"
RESULTS_JSON = Benchmark("load_test").json
START, END = Benchmark("load_test").markers


async def run_load(base_url: str, key: str, tile: bytes, clients: int, requests: int, max_seconds: float) -> dict:
    """``clients`` concurrent connections share ``requests`` POST /v1/plans; stops early at ``max_seconds``."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    issued = 0
    deadline = time.monotonic() + max_seconds
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one_client(http: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.monotonic() < deadline:
            issued += 1
            started = time.perf_counter()
            try:
                response = await http.post("/v1/plans", files={"tile": ("sample.tif", tile, "image/tiff")})
                outcome = str(response.status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes[outcome] += 1

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one_client(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    a = np.asarray(latencies)
    errors = sum(n for outcome, n in outcomes.items() if outcome != "201")
    return {
        "clients": clients,
        "requests": int(a.size),
        "requested": requests,
        "completed_all": int(a.size) == requests,
        "errors": errors,
        "outcomes": dict(outcomes),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
        "wall_s": round(wall, 2),
        "throughput_rps": round(a.size / wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000, help="requests per case")
    parser.add_argument("--max-seconds", type=float, default=240, help="wall-clock bound per case")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per case first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server process")
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument("--out-json", type=Path, default=RESULTS_JSON)
    parser.add_argument("--results-md", type=Path, default=RESULTS_MD)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="load_test_"))
    tile = TILE.read_bytes()
    key = new_key()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PATCHDROP_REDIS_URL")},
        "PATCHDROP_ENVIRONMENT": "production",
        "PATCHDROP_API_KEYS": json.dumps({"loadtest": hash_key(key)}),
        "PATCHDROP_MODELS": json.dumps({"default": str(CHECKPOINT)}),
        "PATCHDROP_DB_PATH": str(workdir / "plans.sqlite3"),
        "PATCHDROP_TORCH_THREADS": str(args.threads),
        "PATCHDROP_DEVICE": "cpu",
        "OMP_NUM_THREADS": str(args.threads),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app", "--host", HOST,
               "--log-level", "warning", "--no-access-log", "--port"]  # fmt: skip
    load_start = os.getloadavg()
    results: dict = {}
    servers: list[Server] = []
    stop_redis = None
    try:
        # The same embedded server with dynamic batching off: what batching buys, measured in the same run.
        cases = {"embedded_unbatched": {**env, "PATCHDROP_BATCH_REQUESTS": "false"}, "embedded": env}
        if not args.skip_celery:
            redis_url, stop_redis = start_redis(workdir)
            celery_env = {**env, "PATCHDROP_REDIS_URL": redis_url, "PATCHDROP_QUEUE": f"load-{uuid.uuid4().hex[:8]}"}
            worker_argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo",
                           "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
            servers.append(Server("Celery worker", worker_argv, celery_env, workdir / "worker.log"))
            cases["celery"] = celery_env
        for name, case_env in cases.items():
            port = free_port()
            server = Server(f"{name} API", [*uvicorn, str(port)], case_env, workdir / f"{name}_api.log")
            servers.append(server)
            base_url = f"http://{HOST}:{port}"
            with httpx.Client(base_url=base_url, timeout=60, headers={"X-API-Key": key}) as warm:
                wait_http(warm, server)
                for _ in range(args.warmup):
                    response = warm.post("/v1/plans", files={"tile": ("sample.tif", tile, "image/tiff")})
                    response.raise_for_status()
            print(f"{name}: {args.clients} clients, {args.requests} requests ...", file=sys.stderr)
            results[name] = asyncio.run(run_load(base_url, key, tile, args.clients, args.requests, args.max_seconds))
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    finally:
        for server in reversed(servers):
            server.close()
        if stop_redis is not None:
            stop_redis()
    load_end = os.getloadavg()
    results.update(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        commit=git_commit(),
        command="python benchmarks/load_test.py " + shlex.join(sys.argv[1:]),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, CPython {platform.python_version()}",
        load_average_1m=[round(load_start[0], 2), round(load_end[0], 2)],
        torch_threads=args.threads,
    )
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(args.results_md, results)
    print(json.dumps(results, indent=2))
    failed = [name for name in CASES if name in results and results[name]["errors"]]
    return 1 if failed else 0


CASES = {
    "embedded_unbatched": "as embedded, dynamic batching off (PATCHDROP_BATCH_REQUESTS=false)",
    "embedded": "uvicorn, tasks in process, SQLite store, concurrent plans batched",
    "celery": "uvicorn + Redis + one solo Celery worker, Redis store",
}


def write_markdown(path: Path, r: dict) -> None:
    lines = [
        START,
        "## Load test (service, issue 8)",
        "",
        f"`{r['command'].strip()}` — {r['date']}, commit `{r['commit'][:12]}`, {r['machine']}, "
        f"{r['torch_threads']} torch thread(s) per process; API keys on; default model, bundled sample tile "
        f"(models/assets/sample_lr_tile.tif); everything on 127.0.0.1. 1-min load average "
        f"{r['load_average_1m'][0]} → {r['load_average_1m'][1]} (the test's own clients and servers included). "
        "Raw numbers: `benchmarks/results/load_test.json`.",
        "",
        "| case | setup | clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, setup in CASES.items():
        if name in r:
            c = r[name]
            done = str(c["requests"]) + ("" if c["completed_all"] else f" of {c['requested']} (time bound hit)")
            lines.append(
                f"| {name} | {setup} | {c['clients']} | {done} | {c['errors']} | {c['p50_ms']:.1f} | "
                f"{c['p95_ms']:.1f} | {c['p99_ms']:.1f} | {c['throughput_rps']:.0f} |"
            )
    if "embedded_unbatched" in r and "embedded" in r:
        ratio = r["embedded"]["throughput_rps"] / r["embedded_unbatched"]["throughput_rps"]
        lines += ["", f"Dynamic batching: {ratio:.2f}x the unbatched embedded throughput in the same run."]
    lines += [
        "",
        "Latency is per request as the client sees it, queueing behind the other clients included: with 20 "
        "clients on 2 cores most of it is waiting for a core, so p50 ≈ clients / throughput.",
        END,
    ]
    write_section(lines, path)


if __name__ == "__main__":
    raise SystemExit(main())
