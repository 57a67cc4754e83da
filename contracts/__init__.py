"""What the platform's parts agree on: pure data and rules, no I/O beyond reading its own files.

* :mod:`contracts.avro` — the Avro schemas of ``transactions.raw`` and ``transactions.labels``
  (``schemas/*.avsc``, every registered version under ``schemas/history``, PII tags);
* :mod:`contracts.events` — ``TransactionIn`` / ``LabelIn`` and the one validation rule set
  (limits, code lists, DLQ reasons), the column tuples of the events and of labelled files;
* :mod:`contracts.iso` — ISO 4217 currencies and ISO 3166-1 countries;
* :mod:`contracts.wire` — the Confluent wire format (framing) and its decode reason codes;
* :mod:`contracts.dlq` — the dead-letter record: stages, headers, content types;
* :mod:`contracts.online_store` — the Redis layout of the online feature store and its scripts.

The producer, the stream, training and serving import these; this package imports none of them.
"""
