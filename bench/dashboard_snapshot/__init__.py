"""A picture of the Grafana dashboard fed by a real run: ``python -m bench.dashboard_snapshot``.

Grafana does not run here, so this draws the dashboard's key panels itself, from what a real Prometheus
(Debian's package) answers to the dashboard's own queries after scraping a real run every second, into
``docs/dashboard.png`` (see docs/dashboard.md).

- ``run``: the stack in processes (Kafka, the sandbox with faults, one worker, Prometheus scraping it), a
  producer at a steady rate, the API cut once; the results checked against the sandbox's ledger; then
  Prometheus asked every drawn panel's expressions over the run.
- ``prometheus``: the Prometheus server (started, stopped, queried through its HTTP API).
- ``panels``: which of the dashboard's panels are drawn (by title), their lines from Prometheus' answers,
  units and legends.
- ``draw``: matplotlib, in Grafana's dark style (the only module that needs matplotlib: the docs extra).

    python -m bench.dashboard_snapshot                                   # ~3 minutes; docs/dashboard.png
    python -m bench.dashboard_snapshot --from-answers /tmp/ecash-dashboard-x/answers.json  # draw again
"""
