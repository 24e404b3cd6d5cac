#!/bin/sh
# Prepare this machine as the taskorg DNS node: dnsmasq answers the cluster
# zone, the taskorg DNS service (registry, lease arbiter) runs under systemd.
# Provision it first; then run prepare-node.sh on every other machine.
#
#   prepare-dns-node.sh --address IP --wheelhouse DIR [--offline]
#                       (--secret-file FILE | --generate-secret) [options]
#
# Idempotent: run it again after any change; it prints "changed: ..." lines
# for what it changed and restarts the services only then.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    echo "options:"
    echo "  --address IP          this machine's address on the cluster network (dnsmasq listens there)"
    echo "  --secret-file FILE    the cluster secret (made once per cluster)"
    echo "  --generate-secret     make the cluster secret here if /etc/taskorg/secret is missing"
    usage_common
}

address="" wheelhouse="" offline=0 secret_file="" generate=0 extra=""
while [ $# -gt 0 ]; do
    case "$1" in
        --address) address=$2; shift 2 ;;
        --wheelhouse) wheelhouse=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --secret-file) secret_file=$2; shift 2 ;;
        --generate-secret) generate=1; shift ;;
        --cluster) CLUSTER=$2; shift 2 ;;
        --suffix) SUFFIX=$2; shift 2 ;;
        --set) extra="$extra${extra:+
}$(echo "$2" | sed 's/=/: /')"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[ -n "$address" ] || die "--address is required"
[ -n "$wheelhouse" ] || die "--wheelhouse is required"
[ -n "$secret_file" ] || [ "$generate" = 1 ] || die "give --secret-file FILE or --generate-secret"
require_root

ensure_packages python3 python3-venv dnsmasq
install_taskorg "$wheelhouse" "$offline"
if [ -n "$secret_file" ]; then install_secret "$secret_file"; else generate_secret; fi

# dnsmasq runs under Debian's own unit; the DNS service only signals it.
extra="manage_dnsmasq: false
dnsmasq_pid_file: /run/dnsmasq/dnsmasq.pid${extra:+
$extra}"
write_config "$address" "$address" "$extra" ""
ensure_dir "$TASKORG_STATE" 0755
ensure_dir "$TASKORG_STATE/dns" 0755
ensure_dir "$TASKORG_STATE/dns/hosts" 0755

dnsmasq_changed=0
ensure_dir /etc/systemd/system/dnsmasq.service.d 0755
if install_content /etc/systemd/system/dnsmasq.service.d/taskorg.conf 0644 \
        < "$UNIT_DIR/dnsmasq.service.d/taskorg.conf"; then
    systemctl daemon-reload
    dnsmasq_changed=1
fi
# The dnsmasq settings come from taskorg itself, so they never drift from it.
dnsmasq_conf=$("$TASKORG_VENV/bin/taskorg" dnsmasq-conf --config "$TASKORG_CONFIG")
if printf '%s\n' "$dnsmasq_conf" | install_content /etc/dnsmasq.d/taskorg.conf 0644; then
    dnsmasq_changed=1
fi
enable_start dnsmasq.service
if [ "$dnsmasq_changed" = 1 ]; then
    systemctl restart dnsmasq.service
    changed "restarted dnsmasq.service"
fi

install_units taskorg-dns.service
enable_start taskorg-dns.service
restart_if_needed taskorg-dns.service
say "DNS node ready: cluster DNS at $address:$DNS_PORT, DNS service at $address:23333"
