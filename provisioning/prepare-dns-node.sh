#!/bin/sh
# Prepare this machine as the taskorg DNS node: dnsmasq answers the cluster
# zone, the taskorg DNS service (registry, lease arbiter) runs under systemd.
# Provision it first; then run prepare-node.sh on every other machine.
#
#   prepare-dns-node.sh --address IP --wheelhouse DIR [--offline]
#                       (--secret-file FILE | --generate-secret)
#                       (--tls-dir DIR | --generate-ca | --no-tls) [options]
#
# Idempotent: run it again after any change; it prints "changed: ..." lines
# for what it changed and restarts the services only then.
set -eu
. "$(cd "$(dirname "$0")" && pwd)/common.sh"

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    echo "options:"
    echo "  --address IP          this machine's address on the cluster network (dnsmasq listens there)"
    echo "  --secret-file FILE    the cluster secret (made once per cluster)"
    echo "  --generate-secret     make the cluster secret here if /etc/taskorg/secret is missing"
    echo "  --generate-ca         make the cluster CA in /etc/taskorg/ca (once) and this host's certificate;"
    echo "                        issue each node's: taskorg ca issue NAME --address IP --dir /etc/taskorg/ca --out DIR"
    usage_common
}

address="" wheelhouse="" offline=0 secret_file="" generate=0 extra="" tls_dir="" no_tls=0 generate_ca=0
while [ $# -gt 0 ]; do
    case "$1" in
        --address) address=$2; shift 2 ;;
        --wheelhouse) wheelhouse=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --secret-file) secret_file=$2; shift 2 ;;
        --generate-secret) generate=1; shift ;;
        --generate-ca) generate_ca=1; shift ;;
        --tls-dir) tls_dir=$2; shift 2 ;;
        --no-tls) no_tls=1; shift ;;
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
if [ "$generate_ca" = 1 ]; then tls_dir=$TASKORG_ETC/ca/hosts/dns; fi
tls_choice "$tls_dir" "$no_tls"
if [ "$no_tls" = 1 ]; then extra="tls: false${extra:+
$extra}"; fi
require_root

ensure_packages python3 python3-venv dnsmasq
install_taskorg "$wheelhouse" "$offline"
ensure_service_user
if [ -n "$secret_file" ]; then install_secret "$secret_file"; else generate_secret; fi

# dnsmasq runs under Debian's own unit; the DNS service only signals it.
extra="manage_dnsmasq: false
dnsmasq_pid_file: /run/dnsmasq/dnsmasq.pid
dns_hosts_dir: /var/lib/taskorg-dns/hosts${extra:+
$extra}"
write_config "$address" "$address" "$extra" ""
if [ "$generate_ca" = 1 ] && [ ! -f "$TASKORG_ETC/ca/ca.key" ]; then
    "$TASKORG_VENV/bin/taskorg" ca init --config "$TASKORG_CONFIG" --dir "$TASKORG_ETC/ca" >/dev/null
    "$TASKORG_VENV/bin/taskorg" ca issue dns --address "$address" --config "$TASKORG_CONFIG" \
        --dir "$TASKORG_ETC/ca" --out "$tls_dir" >/dev/null
    changed "made the cluster CA in $TASKORG_ETC/ca and this host's certificate"
fi
[ -z "$tls_dir" ] || install_tls "$tls_dir"
ensure_state_dir
# dnsmasq (its own user) reads the hosts file the DNS service writes: outside the 0700 state directory.
ensure_owned /var/lib/taskorg-dns 0755 taskorg:taskorg
ensure_owned /var/lib/taskorg-dns/hosts 0755 taskorg:taskorg

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
say "DNS node ready: cluster DNS at $address:$DNS_PORT, DNS service at $address:23333 (internal 23343)"
