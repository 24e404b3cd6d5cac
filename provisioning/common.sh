# Shared steps of prepare-dns-node.sh and prepare-node.sh (sourced, not run).
#
# Every step is idempotent: it checks first, changes only what differs, and
# prints "changed: <what>" when it did. The Ansible roles do the same steps
# with Ansible modules and call install-taskorg.sh for the install itself.
# shellcheck shell=sh

PROVISIONING_DIR=$(cd "$(dirname "$0")" && pwd)
UNIT_DIR="$PROVISIONING_DIR/../systemd"

TASKORG_VENV=/opt/taskorg/venv
TASKORG_ETC=/etc/taskorg
TASKORG_CONFIG=$TASKORG_ETC/taskorg.yaml
TASKORG_SECRET=$TASKORG_ETC/secret
TASKORG_STATE=/var/lib/taskorg

# Defaults for a LAN (the same as ansible/group_vars/all.yml).
CLUSTER=taskorg
SUFFIX=taskorg.internal
DNS_PORT=53
HEARTBEAT_INTERVAL=0.5
LEASE_TIMEOUT=2.0
LEASE_MARGIN=0.5
NODE_DEAD_AFTER=3.0

# Set to 1 by a step that changed something the services read.
RESTART_NEEDED=0

say() { echo "[$(basename "$0")] $*" >&2; }
changed() { echo "changed: $*"; }
die() { say "error: $*"; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "run as root"
}

# ensure_packages PKG...: apt-get install what is missing (the index is
# refreshed only when something is missing, so a prepared host needs no network).
ensure_packages() {
    missing=""
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = installed ] || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    say "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
    changed "installed packages:$missing"
}

# install_taskorg WHEELHOUSE OFFLINE(0|1)
install_taskorg() {
    if [ "$2" = 1 ]; then offline_flag=--offline; else offline_flag=""; fi
    # shellcheck disable=SC2086
    output=$(sh "$PROVISIONING_DIR/install-taskorg.sh" --venv "$TASKORG_VENV" --wheelhouse "$1" $offline_flag)
    if [ -n "$output" ]; then
        echo "$output"
        RESTART_NEEDED=1
    fi
}

# install_content DEST MODE < content: write DEST only when it differs.
# Returns 0 when it changed the file, 1 when it was already right.
install_content() {
    dest=$1 mode=$2
    tmp=$(mktemp "$(dirname "$dest")/.tmp.XXXXXX")
    cat > "$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$dest"
    changed "$dest"
    return 0
}

ensure_dir() {
    dir=$1 mode=$2
    if [ ! -d "$dir" ]; then
        install -d -m "$mode" "$dir"
        changed "created $dir"
    fi
}

# ensure_owned DIR MODE OWNER:GROUP: a directory with exactly that mode and owner.
ensure_owned() {
    ensure_dir "$1" "$2"
    if [ "$(stat -c '%a %U:%G' "$1")" != "${2#0} $3" ]; then
        chown "$3" "$1"
        chmod "$2" "$1"
        changed "$1 is $3 $2"
        RESTART_NEEDED=1
    fi
}

# ensure_service_user: the taskorg system user and group the services run as (no login, no home).
ensure_service_user() {
    if ! getent group taskorg >/dev/null; then
        groupadd --system taskorg
        changed "created the group taskorg"
    fi
    if ! getent passwd taskorg >/dev/null; then
        useradd --system --gid taskorg --home-dir "$TASKORG_STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "taskorg services" taskorg
        changed "created the user taskorg"
    fi
}

# ensure_state_dir: /var/lib/taskorg, the services' own (taskorg, 0700), and everything in it
# (a host prepared before ran the services as root).
ensure_state_dir() {
    ensure_owned "$TASKORG_STATE" 0700 taskorg:taskorg
    if [ -n "$(find "$TASKORG_STATE" \( ! -user taskorg -o ! -group taskorg \) -print -quit)" ]; then
        chown -R taskorg:taskorg "$TASKORG_STATE"
        changed "gave $TASKORG_STATE to taskorg"
    fi
}

# install_group_readable DEST < content: root:taskorg 0640 (the services read it, nobody else).
install_group_readable() {
    changed_file=1
    install_content "$1" 0640 || changed_file=0
    chown root:taskorg "$1"
    [ "$changed_file" = 1 ] && RESTART_NEEDED=1
    return 0
}

# install_secret SOURCE: the cluster secret, root:taskorg 0640.
install_secret() {
    [ -r "$1" ] || die "cannot read the secret file $1"
    ensure_dir "$TASKORG_ETC" 0755
    install_group_readable "$TASKORG_SECRET" < "$1"
}

# generate_secret: a new secret, only when the host has none (once per cluster).
generate_secret() {
    ensure_dir "$TASKORG_ETC" 0755
    [ -s "$TASKORG_SECRET" ] && return 0
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$TASKORG_SECRET")
    chown root:taskorg "$TASKORG_SECRET"
    chmod 0640 "$TASKORG_SECRET"
    changed "generated the cluster secret $TASKORG_SECRET (copy it to every node)"
    RESTART_NEEDED=1
}

# install_tls DIR: the cluster CA certificate and this host's certificate and key, from DIR
# (what `taskorg ca issue NAME --address IP --out DIR` writes: ca.pem, NAME.pem, NAME.key).
install_tls() {
    # Not `dir`: ensure_dir below sets that (sh has no local variables), and ca.pem was then read
    # from /etc/taskorg/tls itself, so it was never installed and every service refused to start.
    tls_src=$1
    [ -r "$tls_src/ca.pem" ] || die "--tls-dir $tls_src: no ca.pem (the cluster CA certificate)"
    keys=$(find "$tls_src" -maxdepth 1 -name '*.key' ! -name ca.key)
    [ "$(printf '%s\n' "$keys" | grep -c .)" = 1 ] || die "--tls-dir $tls_src: expected exactly one NAME.key beside ca.pem"
    cert=${keys%.key}.pem
    [ -r "$cert" ] || die "--tls-dir $tls_src: $cert is missing"
    ensure_owned "$TASKORG_ETC/tls" 0750 root:taskorg
    if install_content "$TASKORG_ETC/tls/ca.pem" 0644 < "$tls_src/ca.pem"; then RESTART_NEEDED=1; fi
    if install_content "$TASKORG_ETC/tls/node.pem" 0644 < "$cert"; then RESTART_NEEDED=1; fi
    install_group_readable "$TASKORG_ETC/tls/node.key" < "$keys"
}

# tls_choice TLS_DIR NO_TLS: one of --tls-dir DIR and --no-tls must be given.
tls_choice() {
    if [ -n "$1" ] && [ "$2" = 1 ]; then die "give --tls-dir DIR or --no-tls, not both"; fi
    if [ -z "$1" ] && [ "$2" = 0 ]; then
        die "give --tls-dir DIR (this host's certificate: taskorg ca issue NAME --address IP --out DIR) or --no-tls"
    fi
}

# yaml_quote TEXT: a double-quoted YAML scalar.
yaml_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# write_config ADDRESS DNS_ADDRESS EXTRA_LINES LABELS: /etc/taskorg/taskorg.yaml.
# EXTRA_LINES: "key: value" lines (from --set), LABELS: "k=v,k=v".
write_config() {
    address=$1 dns_address=$2 extra=$3 labels=$4
    ensure_dir "$TASKORG_ETC" 0755
    {
        echo "# Managed by taskorg provisioning ($(basename "$0")); see docs/provisioning.md."
        echo "cluster: $(yaml_quote "$CLUSTER")"
        echo "suffix: $(yaml_quote "$SUFFIX")"
        echo "dns_address: $(yaml_quote "$dns_address")"
        echo "dns_port: $DNS_PORT"
        echo "address: $(yaml_quote "$address")"
        echo "state_dir: $TASKORG_STATE"
        echo "secret_file: $TASKORG_SECRET"
        echo "heartbeat_interval: $HEARTBEAT_INTERVAL"
        echo "lease_timeout: $LEASE_TIMEOUT"
        echo "lease_margin: $LEASE_MARGIN"
        echo "node_dead_after: $NODE_DEAD_AFTER"
        if [ -n "$labels" ]; then
            echo "labels:"
            echo "$labels" | tr ',' '\n' | while IFS='=' read -r key value; do
                [ -n "$key" ] && echo "  $key: $(yaml_quote "$value")"
            done
        fi
        [ -z "$extra" ] || printf '%s\n' "$extra"
    } > "$TASKORG_CONFIG.new"
    # taskorg itself checks it: an unknown or bad setting is refused here.
    if ! "$TASKORG_VENV/bin/python" -c 'import sys; from taskorg.config import load_config; load_config(sys.argv[1], environ={})' \
            "$TASKORG_CONFIG.new"; then
        rm -f "$TASKORG_CONFIG.new"
        die "the generated config is not valid (see above)"
    fi
    if install_content "$TASKORG_CONFIG" 0644 < "$TASKORG_CONFIG.new"; then RESTART_NEEDED=1; fi
    rm -f "$TASKORG_CONFIG.new"
}

# install_units UNIT...: copy unit files from ../systemd, reload systemd if any changed.
install_units() {
    reload=0
    for unit in "$@"; do
        if install_content "/etc/systemd/system/$unit" 0644 < "$UNIT_DIR/$unit"; then reload=1; RESTART_NEEDED=1; fi
    done
    if [ "$reload" = 1 ]; then systemctl daemon-reload; fi
}

# enable_start UNIT...: enabled at boot and running now.
enable_start() {
    for unit in "$@"; do
        if ! systemctl is-enabled --quiet "$unit"; then
            systemctl enable --quiet "$unit"
            changed "enabled $unit"
        fi
        if ! systemctl is-active --quiet "$unit"; then
            systemctl start "$unit"
            changed "started $unit"
        fi
    done
}

# restart_if_needed UNIT...: restart when config, secret, code or units changed.
restart_if_needed() {
    [ "$RESTART_NEEDED" = 1 ] || return 0
    systemctl restart "$@"
    changed "restarted $*"
}

usage_common() {
    cat <<'EOF'
  --wheelhouse DIR      directory with the taskorg wheel (and its dependencies for --offline)
  --offline             install from the wheelhouse only (air-gapped lab)
  --cluster NAME        cluster name (default taskorg)
  --suffix DOMAIN       cluster DNS suffix (default taskorg.internal)
  --set KEY=VALUE       any other setting of taskorg's config (repeatable)
  --tls-dir DIR         this host's TLS files: ca.pem, NAME.pem, NAME.key (from `taskorg ca issue ... --out DIR`)
  --no-tls              plain HTTP between services (every service warns at every start)
EOF
}
