"""``make bench BENCH=ml``: simulator throughput, feature building and training time.

``run(quick)`` returns figures only, nothing is asserted. Peers run beside each figure in the same
run so it can be read as a ratio: the simulator against the 200k rows/s target, LightGBM fit time
against the RandomForest baseline on the same training window, the online (one transaction)
vector against the columnar path per row.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow.parquet as pq

import features
from ml.data import validate_transactions
from ml.estimators import make_model
from ml.pit import build_feature_frame, card_snapshot, feature_matrix, terminal_snapshot
from ml.protocol import ProtocolConfig, data_bounds, deployment_fold
from ml.train import train
from producer.simulator import SimulatorConfig, simulate

log = logging.getLogger(__name__)

SIMULATOR_TARGET_ROWS_PER_S: Final = 200_000


def _simulator(cfg: SimulatorConfig) -> tuple[dict[str, Any], Any]:
    # warm-up: first-call imports are not simulation
    simulate(SimulatorConfig(days=2, n_customers=200, n_terminals=100, n_online_merchants=20))
    started, cpu_started = time.perf_counter(), time.process_time()
    table = simulate(cfg)
    sim_s = time.perf_counter() - started
    sim_cpu_s = time.process_time() - cpu_started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pq.write_table(table, Path(tmp) / "bench.parquet", compression="zstd")
        write_s = time.perf_counter() - started
    rows = table.num_rows
    return {
        "simulator_rows": rows,
        "simulator_days": cfg.days,
        "simulator_rows_per_s": round(rows / sim_s, 1),
        "simulator_target_ratio": round(rows / sim_s / SIMULATOR_TARGET_ROWS_PER_S, 2),
        # CPU time of this process: less sensitive to other load on a shared machine
        "simulator_rows_per_cpu_s": round(rows / sim_cpu_s, 1) if sim_cpu_s > 0 else None,
        "simulator_parquet_rows_per_s": round(rows / (sim_s + write_s), 1),
    }, table


def _vector_latency(frame: Any, n: int) -> dict[str, float]:
    """Online path (snapshots + build_vector, one transaction) vs the columnar path, per row."""
    rng = np.random.default_rng(0)
    idx = rng.choice(len(frame), min(n, len(frame)), replace=False)
    rows = frame.iloc[idx]
    snaps = []
    for _, row in rows.iterrows():
        t = row["event_time"].to_pydatetime()
        snaps.append(
            (
                features.Transaction(
                    row["transaction_id"], t, row["card_id"], row["terminal_id"], float(row["amount"]),
                    channel=row["channel"], mcc=row["mcc"], device_id=row["device_id"],
                    latitude=row["latitude"], longitude=row["longitude"], country=row["country"],
                ),
                card_snapshot(frame, row["card_id"], t),
                terminal_snapshot(frame, row["terminal_id"], t),
            )
        )  # fmt: skip
    started = time.perf_counter()
    for txn, card, term in snaps:
        features.build_vector(txn, card, term)
    online_us = (time.perf_counter() - started) / len(snaps) * 1e6
    started = time.perf_counter()
    feature_matrix(frame)
    columnar_us = (time.perf_counter() - started) / len(frame) * 1e6
    return {"build_vector_us": round(online_us, 1), "columnar_vector_us_per_row": round(columnar_us, 3)}


def _fit_peers(frame: Any, cfg: ProtocolConfig) -> dict[str, float]:
    """LightGBM vs RandomForest fit time on the same most recent training window."""
    x = feature_matrix(frame)
    ms = frame["event_time_ms"].to_numpy()
    fold = deployment_fold(data_bounds(ms)[1], cfg)
    rows = (ms >= fold.train_start) & (ms < fold.train_end)
    y = frame["is_fraud"].to_numpy()[rows]
    out: dict[str, float] = {"fit_rows": int(rows.sum())}
    for name in ("lightgbm", "random_forest"):
        started = time.perf_counter()
        make_model(name, {}, cfg.seed).fit(x[rows], y)
        out[f"{name}_fit_s"] = round(time.perf_counter() - started, 2)
    out["lightgbm_vs_random_forest_fit"] = round(
        out["lightgbm_fit_s"] / max(out["random_forest_fit_s"], 1e-9), 2
    )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Figures for the ``ml`` section of ``var/reports/bench.json``."""
    if quick:
        sim_cfg = SimulatorConfig(days=45, n_customers=600, n_terminals=500, n_online_merchants=50)
        protocol = ProtocolConfig(n_test_folds=1, n_val_folds=1, burn_in_days=7)
    else:
        sim_cfg = SimulatorConfig()  # 182 days, 5,000 cardholders: ~1.45 M transactions
        protocol = ProtocolConfig()
    out, table = _simulator(sim_cfg)
    started = time.perf_counter()
    frame = build_feature_frame(validate_transactions(table.to_pandas()))
    features_s = time.perf_counter() - started
    out["features_s"] = round(features_s, 2)
    out["features_rows_per_s"] = round(len(frame) / features_s, 1)
    out.update(_vector_latency(frame, 100 if quick else 500))
    out.update(_fit_peers(frame, protocol))
    started, cpu_started = time.perf_counter(), time.process_time()
    result = train(frame, protocol, use_mlflow=False)  # measure training only
    out["train_s"] = round(time.perf_counter() - started, 1)
    out["train_cpu_s"] = round(time.process_time() - cpu_started, 1)
    out["train_rows"] = len(frame)
    out["train_protocol_folds"] = protocol.n_test_folds
    models = result.evaluation["models"]
    out["champion"] = result.champion
    for name in ("lightgbm", "random_forest", "rules", "random"):
        if name in models:
            out[f"{name}_ap"] = round(models[name]["ap"]["mean"], 4)
            out[f"{name}_auc"] = round(models[name]["auc"]["mean"], 4)
    out["quick"] = quick
    return out
