"""Docker labels on every task container.

They let a restarted slave adopt what it already runs, let a master find
duplicates after a partition, and let tests and `cluster down` remove only
what belongs to one cluster.
"""

CLUSTER = "taskorg.cluster"
NODE = "taskorg.node"
TASK = "taskorg.task"
INSTANCE = "taskorg.instance"  # "<task id>/<replica index>"
EPOCH = "taskorg.epoch"
ATTEMPT = "taskorg.attempt"
JOB = "taskorg.job"

# Node labels taskorg sets itself (registered with the DNS service; users may not set `taskorg.*`).
NO_MASTER_SERVICE = "taskorg.no-master-service"  # "true": the node runs no master service (setting master_service)
