#!/usr/bin/env bash
# Prepare this machine for taskorg's local cluster and tests. Idempotent:
# installs only what is missing, starts dockerd only when none answers, and
# rebuilds the virtualenv only when the requirements change.
#   TASKORG_SETUP_EXTRAS="test"  also installs what the test tiers need.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
extras="${TASKORG_SETUP_EXTRAS:-}"

say() { printf '==> %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "taskorg setup: run as root (it installs packages, starts dockerd, binds DNS on port 53)" >&2
  exit 2
fi

# ---- Debian packages --------------------------------------------------------------
packages=(docker.io dnsmasq-base dnsutils busybox-static python3 python3-venv python3-pip iproute2 procps ca-certificates)
if [[ " $extras " == *" test "* ]]; then
  # etcd: only bench/consensus.py's comparison of consensus engines uses it.
  # prometheus: tests/cluster/test_prometheus.py runs the binary itself (and promtool); its
  # Debian service is kept from starting below.
  # nftables: tests/testbed/test_provisioning_files.py checks the firewall template with `nft -c`.
  packages+=(debootstrap ansible ansible-lint openssh-client chromium shellcheck tcpdump etcd-server etcd-client
             prometheus nftables)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps it small; docker.io's recommends are not needed.
  # No package's service may start here (Debian's prometheus would listen on :9090 for good):
  # a policy-rc.d of our own, for this install only.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
  fi
  installed=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || installed=$?
  [ -z "$own_policy" ] || rm -f "$policy"
  [ "$installed" -eq 0 ] || exit "$installed"
fi

# ---- dockerd -------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl start docker
  else
    nohup dockerd >/var/log/taskorg-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start: see /var/log/taskorg-dockerd.log" >&2; exit 1; }
fi

# ---- virtualenv ------------------------------------------------------------------------
stamp="$venv/.taskorg-requirements"
want="$(cat "$repo/requirements.txt" "$repo/requirements-dev.txt" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "preparing the virtualenv in $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # Every package pinned with its hashes (scripts/pin-requirements.sh makes the file): pip
  # refuses a file whose hash is not listed, and any package the file does not name.
  # (grep: some machines' pip.conf names local indexes that may be absent; pip warns per package)
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$repo/requirements-dev.txt" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  # taskorg itself, built by the hashed setuptools just installed (no build isolation: that would
  # fetch an unpinned setuptools from the index).
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$repo" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  "$venv/bin/python" -c "import taskorg, flask, docker, playwright" || { echo "virtualenv incomplete" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

# ---- the task image (busybox-static, built locally, cached by content) -----------------------
"$venv/bin/taskorg" image build >/dev/null
