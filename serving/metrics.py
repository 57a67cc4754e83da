"""Prometheus metrics of the serving API (``fraud_api_*``, base units), one registry per app.

RED: ``fraud_api_requests_total{endpoint,method,status}``, ``fraud_api_request_duration_seconds``,
``fraud_api_in_flight_requests``. Domain: ``fraud_api_predictions_total{decision,feature_source}``,
``fraud_api_fraud_probability`` (score histogram), ``fraud_api_feature_fetch_duration_seconds``,
``fraud_api_feature_fallbacks_total{reason}``, ``fraud_api_redis_breaker_state`` (0 closed,
1 half-open, 2 open), ``fraud_api_redis_breaker_transitions_total{to}``,
``fraud_api_model_info{...}``, ``fraud_api_model_loaded``, ``fraud_api_model_reloads_total{outcome}``,
``fraud_api_score_batch_size``, ``fraud_api_scoring_duration_seconds``,
``fraud_api_prediction_log_buffered``, ``fraud_api_prediction_log_{written,dropped,write_errors}_total``,
``fraud_online_state_newest_event_timestamp_seconds{source="predict"}``,
``fraud_api_published_total{outcome}``, ``fraud_api_event_loop_lag_seconds``; drift:
``fraud_api_score_psi`` (PSI of the last scores against the served model's training reference,
ml.drift; absent until enough scores were seen) and ``fraud_api_score_drift_window``.
A registry per app keeps several apps in one process (tests) apart.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ml.drift import ScoreDrift

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
SCORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: why a lookup was answered with the model's learnt defaults (serving/online_store.py)
FALLBACK_REASONS = ("breaker_open", "timeout", "error")


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.requests = Counter(
            "fraud_api_requests", "HTTP requests by route template, method and status",
            ["endpoint", "method", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "fraud_api_request_duration_seconds", "HTTP request latency in the app (ASGI) by route",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("fraud_api_in_flight_requests", "HTTP requests being served", registry=r)
        self.predictions = Counter(
            "fraud_api_predictions", "Scored transactions by decision and feature source",
            ["decision", "feature_source"], registry=r,
        )  # fmt: skip
        self.score = Histogram(
            "fraud_api_fraud_probability", "Fraud probability of scored transactions",
            buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.feature_fetch = Histogram(
            "fraud_api_feature_fetch_duration_seconds", "Online feature lookups (one Redis round trip)",
            ["outcome"], buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "fraud_api_feature_fallbacks",
            "Lookups answered with the model's learnt defaults instead of Redis, by reason",
            ["reason"], registry=r,
        )  # fmt: skip
        self.breaker_state = Gauge(
            "fraud_api_redis_breaker_state",
            "Redis circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
        )
        self.breaker_transitions = Counter(
            "fraud_api_redis_breaker_transitions", "Breaker state changes by new state", ["to"], registry=r
        )
        self.model_info = Gauge(
            "fraud_api_model_info", "The model being served (value 1)",
            ["model_name", "model_version", "model_family", "feature_set_version"], registry=r,
        )  # fmt: skip
        self.model_loaded = Gauge("fraud_api_model_loaded", "1 when a model is loaded", registry=r)
        self.model_reloads = Counter(
            "fraud_api_model_reloads", "Model loads by outcome (loaded, failed)", ["outcome"], registry=r
        )
        self.model_loaded_at = Gauge(
            "fraud_api_model_loaded_timestamp_seconds", "When the served model was loaded", registry=r
        )
        self.batch_size = Histogram(
            "fraud_api_score_batch_size", "Rows per scoring micro-batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.scoring = Histogram(
            "fraud_api_scoring_duration_seconds",
            "One micro-batch: vectors, probabilities and reasons", buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.log_buffered = Gauge(
            "fraud_api_prediction_log_buffered", "Predictions waiting to be written to Postgres", registry=r
        )
        self.log_written = Counter(
            "fraud_api_prediction_log_written", "Predictions written to the prediction log", registry=r
        )
        self.log_dropped = Counter(
            "fraud_api_prediction_log_dropped",
            "Predictions never logged (buffer full or shutdown)",
            registry=r,
        )
        self.log_errors = Counter(
            "fraud_api_prediction_log_write_errors", "Failed prediction-log batch writes", registry=r
        )
        self.state_newest_event = Gauge(
            "fraud_online_state_newest_event_timestamp_seconds",
            "Event time of the newest transaction applied to the online state, by source",
            ["source"], registry=r,
        )  # fmt: skip
        self.published = Counter(
            "fraud_api_published",
            "Scored transactions new to the online state published to transactions.raw, by outcome "
            "(delivered, failed, dropped)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.loop_lag = Histogram(
            "fraud_api_event_loop_lag_seconds", "Delay of a periodic event-loop tick (responsiveness)",
            buckets=FAST_BUCKETS, registry=r,
        )  # fmt: skip
        self.breaker_state.set(0)
        self.model_loaded.set(0)
        for reason in FALLBACK_REASONS:  # a series per reason from the start: 0 is data, absence is not
            self.fallbacks.labels(reason)
        self.drift: ScoreDrift | None = None  # the served model's (serving.model_manager sets it)
        r.register(_DriftCollector(self))


class _DriftCollector(Collector):
    """PSI computed when scraped (one bincount), not per request."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drift = self.metrics.drift
        if drift is None:
            return
        yield GaugeMetricFamily(
            "fraud_api_score_drift_window", "Scores in the drift window", value=drift.count
        )
        value = drift.psi()
        if value is not None:
            yield GaugeMetricFamily(
                "fraud_api_score_psi",
                "PSI of the last scores against the served model's training score reference",
                value=value,
            )
