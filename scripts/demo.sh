#!/usr/bin/env bash
# The main job: a local 3-node taskorg cluster (the DNS node, and per node the DNS,
# node, master, slave and webview services) with the examples running; then the
# DNS node's power loss, which stops nothing.
# Safe to run twice: a running cluster is shown, not started again.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
taskorg="$repo/.venv/bin/taskorg"
nodes="${TASKORG_NODES:-3}"

if "$taskorg" cluster status >/dev/null 2>&1; then
  echo "A local cluster is already running:"
  "$taskorg" cluster status
else
  "$taskorg" cluster up --nodes "$nodes"
  echo
  "$taskorg" submit "$repo"/examples/*.yaml
  sleep 3
  echo
  echo "Losing the DNS node stops nothing: its DNS service and dnsmasq are killed (a power loss) ..."
  cluster_py() { "$repo/.venv/bin/python" -c "from taskorg.devtools.localcluster import LocalCluster; LocalCluster.load().$1"; }
  cluster_py "kill_dns_node()"
  sleep 1
  echo "  dig +short @127.0.1.2 master.taskorg.internal -> $(dig +short @127.0.1.2 master.taskorg.internal)"
  "$taskorg" submit "$repo/examples/hello.yaml"
  echo "  ... and the DNS node comes back, catching up from the others."
  cluster_py "start_dns()"
fi
echo
"$taskorg" ps
echo
echo "Try: $taskorg members | $taskorg ps | $taskorg show ID | $taskorg logs ID"
echo "Failover: kill the master node's processes and watch master.taskorg.internal move:"
echo "  dig +short @127.0.1.1 master.taskorg.internal"
echo "Stop it all: $taskorg cluster down"
