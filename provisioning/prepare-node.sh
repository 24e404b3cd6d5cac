#!/bin/sh
# Prepare this machine as a regular taskorg node: docker.io, and the node,
# master, slave and webview services under systemd. The DNS node must be
# provisioned first (prepare-dns-node.sh); its address is --dns-address.
#
#   prepare-node.sh --address IP --dns-address IP --secret-file FILE
#                   (--tls-dir DIR | --no-tls)
#                   --wheelhouse DIR [--offline] [--label KEY=VALUE]... [options]
#
# Idempotent: run it again after any change; it prints "changed: ..." lines
# for what it changed and restarts the services only then.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

SERVICES="taskorg-node.service taskorg-master.service taskorg-slave.service taskorg-webview.service"

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    echo "options:"
    echo "  --address IP          this machine's address on the cluster network"
    echo "  --dns-address IP      the DNS node's address (the cluster's only resolver)"
    echo "  --secret-file FILE    the cluster secret (the DNS node's /etc/taskorg/secret)"
    echo "  --label KEY=VALUE     a node label for placement constraints (repeatable)"
    usage_common
}

address="" dns_address="" wheelhouse="" offline=0 secret_file="" labels="" extra="" tls_dir="" no_tls=0
while [ $# -gt 0 ]; do
    case "$1" in
        --address) address=$2; shift 2 ;;
        --dns-address) dns_address=$2; shift 2 ;;
        --wheelhouse) wheelhouse=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --secret-file) secret_file=$2; shift 2 ;;
        --tls-dir) tls_dir=$2; shift 2 ;;
        --no-tls) no_tls=1; shift ;;
        --label) labels="$labels${labels:+,}$2"; shift 2 ;;
        --cluster) CLUSTER=$2; shift 2 ;;
        --suffix) SUFFIX=$2; shift 2 ;;
        --set) extra="$extra${extra:+
}$(echo "$2" | sed 's/=/: /')"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[ -n "$address" ] || die "--address is required"
[ -n "$dns_address" ] || die "--dns-address is required"
[ -n "$wheelhouse" ] || die "--wheelhouse is required"
[ -n "$secret_file" ] || die "--secret-file is required"
tls_choice "$tls_dir" "$no_tls"
if [ "$no_tls" = 1 ]; then extra="tls: false${extra:+
$extra}"; fi
require_root

ensure_packages python3 python3-venv docker.io
enable_start docker.service
install_taskorg "$wheelhouse" "$offline"
ensure_service_user
install_secret "$secret_file"
write_config "$address" "$dns_address" "$extra" "$labels"
[ -z "$tls_dir" ] || install_tls "$tls_dir"
ensure_state_dir

# shellcheck disable=SC2086
install_units $SERVICES
# shellcheck disable=SC2086
enable_start $SERVICES
# shellcheck disable=SC2086
restart_if_needed $SERVICES
say "node ready: services at $address (slave 23334, master 23335 and internal 23345, node 23336, webview 23380)"
