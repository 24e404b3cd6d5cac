"""The master service: task state, placement, reconciliation, replication."""
