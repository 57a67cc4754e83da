"""A small closed-loop HTTP/1.1 load generator for the serving bench (run in its own process).

``python -m serving.loadgen --port 8000 --path /predict --bodies bodies.jsonl -c 32 -d 10``
keeps ``-c`` keep-alive connections busy (each sends its next request when the previous answer is
read) for ``-d`` seconds after ``--warmup`` seconds, and prints one JSON line: requests/s, latency
percentiles (ms), status counts, the generator's own CPU seconds. Raw asyncio streams on uvloop:
a request costs the generator a few tens of µs, so on a small machine it steals as little CPU
as possible from the server it measures (an httpx client costs ~10x more per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("serving.loadgen")


def build_requests(method: str, path: str, host: str, bodies: list[bytes], headers: list[str]) -> list[bytes]:
    extra = "".join(f"{h}\r\n" for h in headers)
    if method == "GET" or not bodies:
        return [f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()]
    return [
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(b)}\r\n{extra}\r\n".encode()
        + b
        for b in bodies
    ]


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    step: int,
    warm_until: float,
    stop_at: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            writer.write(requests[i % len(requests)])
            i += step
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at < 0:
                raise RuntimeError(f"response without content-length: {head[:200]!r}")
            end = lower.find(b"\r\n", at)
            await reader.readexactly(int(lower[at + 15 : end]))
            t1 = time.perf_counter()
            if t0 >= warm_until and t1 <= stop_at:
                latencies.append(t1 - t0)
                statuses[status] += 1
    finally:
        writer.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def run(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    start = time.perf_counter()
    warm_until = start + warmup_s
    stop_at = warm_until + duration_s
    cpu0 = time.process_time()
    await asyncio.gather(
        *(
            _connection(host, port, requests, k, concurrency, warm_until, stop_at, latencies, statuses)
            for k in range(concurrency)
        )
    )
    latencies.sort()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    ms = [v * 1000 for v in latencies]
    return {
        "requests": len(latencies),
        "ok": ok,
        "non_2xx": len(latencies) - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rps": round(len(latencies) / duration_s, 1),
        "p50_ms": round(percentile(ms, 0.50) or 0, 3),
        "p90_ms": round(percentile(ms, 0.90) or 0, 3),
        "p99_ms": round(percentile(ms, 0.99) or 0, 3),
        "max_ms": round(ms[-1], 3) if ms else None,
        "concurrency": concurrency,
        "duration_s": duration_s,
        "generator_cpu_s": round(time.process_time() - cpu0, 3),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/predict")
    p.add_argument("--method", default=None, help="default: POST with --bodies, else GET")
    p.add_argument("--bodies", type=Path, default=None, help="JSON lines, one request body each")
    p.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("-d", "--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args(argv)
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line] if args.bodies else []
    method = args.method or ("POST" if bodies else "GET")
    requests = build_requests(method, args.path, f"{args.host}:{args.port}", bodies, args.header)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    result = asyncio.run(run(args.host, args.port, requests, args.concurrency, args.duration, args.warmup))
    result["path"] = args.path
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
