"""Prometheus metrics of every service (docs/metrics.md lists them all).

`registry` builds one registry per app (process counters plus the service's
scrape-time collectors), `http` adds `/metrics`, `/healthz`, `/readyz` and
the request counters to a Flask app; one module per service defines that
service's counters (`master`, `slave`, `dns`, `node`) and reads its gauges
when Prometheus scrapes (`telemetry` for the node's machine). Counters are
module-level so a hot path pays one `inc()`.
"""
