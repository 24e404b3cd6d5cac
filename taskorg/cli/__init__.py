"""The `taskorg` command: services, cluster operations and the local cluster."""
