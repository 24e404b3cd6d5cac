"""The local cluster's one error, apart so that every devtools module can raise it without
importing `localcluster` (which imports them)."""


class ClusterError(RuntimeError):
    """The local cluster could not be started or reached."""
