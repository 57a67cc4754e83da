"""``make bench``: one module per section (``ml``, ``producer``, ``streaming``, ``transforms``,
``serving``), each measuring its part against the real services of the running local stack; the
runner (:mod:`bench.runner`) writes ``var/reports/bench.json`` and renders ``docs/benchmarks.md``.
Nothing in the product packages exists for the bench: it drives their public functions and attaches
its own listeners (the stream's ``on_batch``)."""
