"""The slave service's figures: container starts, by outcome, and how long docker took."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STARTS = Counter("taskorg_slave_container_starts", "Start orders carried out, by outcome (started, error, refused)",
                 ["outcome"])
START_SECONDS = Histogram("taskorg_slave_container_start_seconds",
                          "From a start order's arrival to its container running (or failing to)",
                          buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30))
for _outcome in ("started", "error", "refused"):
    STARTS.labels(_outcome)  # exported at zero from the start
REPORTS = Counter("taskorg_slave_reports", "Reports sent to the master, by reason (change: docker's events or a new "
                  "master; resync: the periodic full report) and outcome (delivered; failed: tried again after "
                  "report_interval)", ["reason", "outcome"])
for _reason in ("change", "resync"):
    for _outcome in ("delivered", "failed"):
        REPORTS.labels(_reason, _outcome)
