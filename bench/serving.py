"""``make bench BENCH=serving``: /predict throughput and latency beside the app's own ceiling.

One ``python -m serving`` process (uvicorn, uvloop, httptools) on a free port with the real Redis,
Postgres prediction log and the MLflow champion: ``SERVING_MODEL_NAME@champion`` when the registry
has one, else a small model trained here and registered as ``fraud-detector-bench`` (reported in
``model_source``). The online state holds simulated history; the request bodies are later
transactions of the same cards and terminals, each read and appended (what serving publishes goes
to a throwaway topic). vegeta (``vegeta attack -rate=0 -workers=32 -max-workers=32``: closed loop,
32 keep-alive connections on loopback, built by ``make setup`` from the Go module proxy) alternates
``GET /health`` (the trivial endpoint: same app, same middleware) and ``POST /predict`` twice, so
both see the same machine state; each figure is the mean of its two rounds, from ``vegeta report
-type=json``. Then an open-loop run: ``-rate=1000/s`` offered whatever the answers' pace (p99 at a
fixed load). The machine is shared: the load average and vegeta's own CPU time are reported with
the figures.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Final

import numpy as np

import features
from common.settings import ROOT, mlflow_settings, postgres_settings, redis_settings

log = logging.getLogger("bench.serving")

BENCH_MODEL = "fraud-detector-bench"
CONCURRENCY = 32
OPEN_LOOP_RATE = 1000
VEGETA: Final = ROOT / ".cache" / "bin" / "vegeta"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_model(tracking_uri: str) -> tuple[str, str, str]:
    """(model name, champion version, where it came from)."""
    from ml.registry import alias_version
    from serving.settings import get_settings

    name = get_settings().model_name
    version = alias_version(name, "champion", tracking_uri=tracking_uri)
    if version is not None:
        return name, version, f"registry champion of {name}"
    version = alias_version(BENCH_MODEL, "champion", tracking_uri=tracking_uri)
    if version is not None:
        return BENCH_MODEL, version, f"no {name}@champion: reused {BENCH_MODEL}@champion"
    from mlflow import MlflowClient

    from ml.data import validate_transactions
    from ml.pit import build_feature_frame
    from ml.protocol import ProtocolConfig
    from ml.train import train
    from producer.simulator import SimulatorConfig, simulate

    log.info("no %s@champion in MLflow: training a small model as %s", name, BENCH_MODEL)
    sim = SimulatorConfig(
        seed=7, days=60, n_customers=400, n_terminals=300, n_online_merchants=40, fraud_rate=0.02
    )
    frame = build_feature_frame(validate_transactions(simulate(sim).to_pandas()))
    result = train(
        frame,
        ProtocolConfig(n_test_folds=1, n_val_folds=1, burn_in_days=14),
        tracking_uri=tracking_uri,
        experiment="serving-bench",
        register_as=BENCH_MODEL,
    )
    assert result.registered_version is not None
    MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(
        BENCH_MODEL, "champion", result.registered_version
    )
    return BENCH_MODEL, result.registered_version, f"no {name}@champion: trained {BENCH_MODEL} for the bench"


def _request_bodies(namespace: str, n: int) -> list[str]:
    """Seed the online state with simulated history up to a cut; bodies = ``n`` later transactions
    of the same cards and terminals, each with an id of its own (so each request reads the card's
    events and appends one: the real path), cycling through the later ones with shifted times."""
    from ml.data import validate_transactions
    from ml.feature_writer import seed_frame
    from producer.simulator import SimulatorConfig, simulate

    sim = SimulatorConfig(seed=99, days=40, n_customers=2000, n_terminals=1000, n_online_merchants=50)
    history = validate_transactions(simulate(sim).to_pandas())
    cut = int(history["event_time_ms"].quantile(0.9))
    seed_frame(history[history["event_time_ms"] < cut], namespace=namespace)
    later = history[history["event_time_ms"] >= cut].to_dict("records")
    bodies = []
    for i in range(n):
        row = later[i % len(later)]
        lap = i // len(later)
        body = {
            "transaction_id": f"{row['transaction_id']}-{lap}",
            "event_time": features.from_epoch_ms(int(row["event_time_ms"]) + lap)
            .isoformat()
            .replace("+00:00", "Z"),
            "card_id": row["card_id"],
            "terminal_id": row["terminal_id"],
            "amount": f"{row['amount']:.2f}",
            "currency": row.get("currency") or "EUR",
        }
        for k in ("mcc", "channel", "device_id", "latitude", "longitude", "country", "merchant_name"):
            v = row.get(k)
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                body[k] = v
        bodies.append(json.dumps(body))
    return bodies


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback URL built here
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def _targets(path: Path, url: str, key: str, bodies: list[str] | None) -> Path:
    """vegeta's JSON targets: one GET, or one POST per request body (sent round robin)."""
    header = {"X-API-Key": [key]}
    if bodies is None:
        lines = [json.dumps({"method": "GET", "url": url, "header": header})]
    else:
        post = {**header, "Content-Type": ["application/json"]}
        lines = [
            json.dumps(
                {"method": "POST", "url": url, "header": post, "body": base64.b64encode(b.encode()).decode()}
            )
            for b in bodies
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _attack(
    port: int, path: str, seconds: float, bodies: list[str] | None, key: str, tmp: Path, rate: int = 0
) -> dict[str, Any]:
    """One vegeta run against ``path``: closed loop (``rate`` 0: 32 workers as fast as they can) or
    open loop (``rate`` requests/s offered whatever the answers' pace): req/s, latency, statuses."""
    if not VEGETA.exists():
        raise FileNotFoundError(f"{VEGETA} is missing: run 'make setup'")
    name = path.strip("/").replace("/", "_") or "root"
    targets = _targets(tmp / f"{name}.targets", f"http://127.0.0.1:{port}{path}", key, bodies)
    results = tmp / f"{name}.bin"
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = [f"-workers={CONCURRENCY}", f"-max-workers={CONCURRENCY}"] if rate == 0 else ["-workers=64"]
    pace = f"-rate={rate}/s" if rate else "-rate=0"
    attack = [str(VEGETA), "attack", "-format=json", f"-targets={targets}", pace, *workers,
              f"-duration={seconds}s", "-timeout=10s", f"-output={results}"]  # fmt: skip
    subprocess.run(attack, check=True, timeout=seconds + 60)
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [str(VEGETA), "report", "-type=json", str(results)], check=True, capture_output=True, text=True
    )
    report: dict[str, Any] = json.loads(out.stdout)
    lat = report["latencies"]
    codes = {str(k): int(v) for k, v in (report.get("status_codes") or {}).items()}
    result = {
        "requests": int(report["requests"]),
        "rps": round(float(report["throughput"]), 1),
        "p50_ms": round(lat["50th"] / 1e6, 3),
        "p90_ms": round(lat["90th"] / 1e6, 3),
        "p99_ms": round(lat["99th"] / 1e6, 3),
        "max_ms": round(lat["max"] / 1e6, 3),
        "status_codes": codes,
        "non_2xx": sum(n for c, n in codes.items() if not c.startswith("2")),
        "errors": (report.get("errors") or [])[:5],
        "loadgen_cpu_s": round((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime), 2),
    }
    log.info("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d", path, result["rps"], result["p50_ms"],
             result["p99_ms"], result["non_2xx"])  # fmt: skip
    return result


def _metric_sum(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def _by_label(text: str, metric: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "{") and f'{label}="' in line:
            value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
            out[value] = out.get(value, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def run(quick: bool = False) -> dict[str, Any]:
    import psutil
    import redis
    from confluent_kafka.admin import AdminClient, NewTopic

    from common.schema_registry import SchemaRegistry
    from common.settings import kafka_settings
    from contracts.avro import subject_for

    out: dict[str, Any] = {"concurrency": CONCURRENCY, "load_average_before": os.getloadavg()}
    tracking_uri = mlflow_settings().mlflow_tracking_uri
    model_name, version, source = _ensure_model(tracking_uri)
    out.update({"model_name": model_name, "model_version": version, "model_source": source})
    namespace = f"bench-serving-{os.getpid()}"
    table = f"bench_prediction_log_{os.getpid()}"
    bodies = _request_bodies(namespace, 60_000 if not quick else 15_000)
    k = kafka_settings()
    topic = f"bench-serving-{os.getpid()}.raw"  # what serving publishes, kept out of the platform's topic
    admin = AdminClient({"bootstrap.servers": k.kafka_bootstrap_servers})
    for fut in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        fut.result(timeout=30)
    port = _free_port()
    key = "bench-key"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "SERVING_PORT": str(port),
        "SERVING_HOST": "127.0.0.1",
        "SERVING_MODEL_NAME": model_name,
        "SERVING_FEATURE_NAMESPACE": namespace,
        "SERVING_PREDICTION_LOG_TABLE": table,
        "SERVING_API_KEYS": key,
        "SERVING_PUBLISH_TOPIC": topic,
        "LOG_LEVEL": "WARNING",
    }
    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = subprocess.Popen([sys.executable, "-m", "serving"], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 300
            while _get(f"http://127.0.0.1:{port}/ready")[0] != 200:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the serving process did not become ready")
                time.sleep(0.5)
            proc = psutil.Process(server.pid)
            _attack(port, "/predict", 2.0, bodies, key, tmp)  # warm-up
            rounds: dict[str, list[dict[str, Any]]] = {"/health": [], "/predict": []}
            cpu: dict[str, float] = {"/health": 0.0, "/predict": 0.0}
            for _ in range(2):
                for path in ("/health", "/predict"):
                    c0 = sum(proc.cpu_times()[:2])
                    rounds[path].append(
                        _attack(port, path, seconds, bodies if path == "/predict" else None, key, tmp)
                    )
                    cpu[path] += sum(proc.cpu_times()[:2]) - c0
            open_loop = _attack(port, "/predict", seconds, bodies, key, tmp, rate=OPEN_LOOP_RATE)
            _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
            text = metrics.decode()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    out["load_average_after"] = os.getloadavg()

    def mean(path: str, field: str) -> float:
        return round(float(np.mean([r[field] for r in rounds[path]])), 3)

    requests = {p: sum(r["requests"] for r in rounds[p]) for p in rounds}
    out.update(
        {
            "predict_rps": mean("/predict", "rps"),
            "predict_p50_ms": mean("/predict", "p50_ms"),
            "predict_p99_ms": mean("/predict", "p99_ms"),
            "trivial_rps": mean("/health", "rps"),
            "trivial_p50_ms": mean("/health", "p50_ms"),
            "trivial_p99_ms": mean("/health", "p99_ms"),
            "predict_vs_trivial": round(mean("/predict", "rps") / max(mean("/health", "rps"), 1e-9), 3),
            "predict_non_2xx": sum(r["non_2xx"] for r in rounds["/predict"]),
            "open_loop_rate_per_s": OPEN_LOOP_RATE,
            "open_loop_achieved_rps": open_loop["rps"],
            "open_loop_p50_ms": open_loop["p50_ms"],
            "open_loop_p99_ms": open_loop["p99_ms"],
            "open_loop_non_2xx": open_loop["non_2xx"],
            "published": _by_label(text, "fraud_api_published_total", "outcome"),
            "unique_request_bodies": len(bodies),
            "rounds": rounds,
            "server_cpu_ms_per_request": {p: round(1000 * cpu[p] / max(requests[p], 1), 3) for p in rounds},
            "feature_sources": _by_label(text, "fraud_api_predictions_total", "feature_source"),
            "decisions": _by_label(text, "fraud_api_predictions_total", "decision"),
            "fallbacks": _metric_sum(text, "fraud_api_feature_fallbacks_total"),
            "mean_score_batch_rows": round(
                _metric_sum(text, "fraud_api_score_batch_size_sum")
                / max(_metric_sum(text, "fraud_api_score_batch_size_count"), 1),
                2,
            ),
            "prediction_log_written": _metric_sum(text, "fraud_api_prediction_log_written_total"),
            "prediction_log_dropped": _metric_sum(text, "fraud_api_prediction_log_dropped_total"),
            "seconds_per_round": seconds,
            "load_generator": f"vegeta {os.environ.get('VEGETA_VERSION', '')} attack -rate=0 "
            f"-workers={CONCURRENCY} -max-workers={CONCURRENCY} (closed loop)",
            "loadgen_cpu_s_per_request": {
                p: round(sum(r["loadgen_cpu_s"] for r in rounds[p]) / max(requests[p], 1), 6) for p in rounds
            },
            "command": "make bench BENCH=serving",
            "cpus": os.cpu_count(),
        }
    )
    for fut in admin.delete_topics([topic]).values():
        fut.result(timeout=30)
    SchemaRegistry(k.schema_registry_url).delete_subject(subject_for(topic))
    r = redis.Redis.from_url(redis_settings().redis_url)
    keys = list(r.scan_iter(match=f"{namespace}:*", count=10_000))
    for start in range(0, len(keys), 10_000):
        r.unlink(*keys[start : start + 10_000])
    import psycopg

    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    return out
