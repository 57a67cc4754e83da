"""``python -m producer.schemas register``: set compatibility and register the producer's subjects."""

from __future__ import annotations

import logging
import sys

import typer

from common.settings import kafka_settings
from producer.schemas import Registry, RegistryUnavailableError, SchemaRegistrationError, register_all
from producer.settings import get_settings

app = typer.Typer(add_completion=False, help=__doc__)
log = logging.getLogger("producer.schemas")


@app.command()
def register() -> None:
    """Register transaction.avsc and label.avsc under <topic>-value (exit 1 if refused)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    k, s = kafka_settings(), get_settings()
    registry = Registry.connect(k.schema_registry_url, s.connect_timeout_s)
    topics = {"transaction": k.kafka_topic_raw, "label": k.kafka_topic_labels}
    try:
        done = register_all(registry, topics, s.subject_compatibility)
    except (SchemaRegistrationError, RegistryUnavailableError) as exc:
        log.error("%s", exc)
        sys.exit(1)
    for reg in done.values():
        typer.echo(f"{reg.subject}: id {reg.schema_id}, version {reg.version}, {reg.compatibility}")


@app.command()
def show() -> None:
    """Print the current schemas' subjects and files (no registry call)."""
    from producer.schemas import history, schema_path, subject_for

    k = kafka_settings()
    for event_type, topic in (("transaction", k.kafka_topic_raw), ("label", k.kafka_topic_labels)):
        versions = ", ".join(f"v{v}" for v, _ in history(event_type))
        typer.echo(f"{subject_for(topic)}: {schema_path(event_type)} (history: {versions})")


if __name__ == "__main__":
    app()
