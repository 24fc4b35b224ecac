"""A picture of the Grafana dashboard fed by a real run: ``python -m bench.dashboard_snapshot``.

Grafana does not run here, so this draws the dashboard's key panels itself, from the worker's own
``/metrics`` scraped every second during a real run, into ``docs/dashboard.png`` (see docs/dashboard.md).

- ``run``: the stack in processes (Kafka, the sandbox with faults, one worker), a producer at a steady
  rate, the API cut once, /metrics fetched every second; the results checked against the sandbox's ledger.
- ``promql``: the scrapes parsed with prometheus_client's parser, and the PromQL the dashboard uses
  (``rate``/``increase`` with Prometheus' extrapolation, ``histogram_quantile``, ``sum``/``max by``).
- ``panels``: which of the dashboard's panels are drawn (by title), their queries, units and legends.
- ``draw``: matplotlib, in Grafana's dark style (the only module that needs matplotlib: the docs extra).

    python -m bench.dashboard_snapshot                                   # ~3 minutes; docs/dashboard.png
    python -m bench.dashboard_snapshot --from-samples /tmp/ecash-dashboard-x/samples.jsonl  # draw again
"""
