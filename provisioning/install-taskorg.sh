#!/bin/sh
# Install (or upgrade) taskorg into a virtualenv from a directory of wheels.
#
#   install-taskorg.sh [--venv DIR] --wheelhouse DIR|FILE.tar [--offline] [--index-url URL]
#
# The wheelhouse (a directory, or a tar of one as pack-wheelhouse.py makes) holds the taskorg
# wheel and requirements.txt, which pins every dependency with its sha256 hashes; for an
# air-gapped install (--offline) every dependency wheel too (made on a connected machine
# with `pip wheel --require-hashes -r requirements.txt -w DIR`, then
# provisioning/hash-built-wheels.py DIR for the wheels built from source there).
# Without --offline the dependencies come from the package index. Either way pip
# installs them with --require-hashes: a file whose hash is not listed, or a package
# the file does not pin, is refused. The taskorg wheel goes in on its own, --no-deps.
#
# Idempotent: a stamp in the venv records what was installed; nothing is done
# when the wheelhouse is unchanged. Prints "changed: ..." when it changed
# something (the Ansible role reads that), and nothing else on stdout.
# Self-contained (no common.sh): Ansible's script module sends this file alone.
set -eu

venv=/opt/taskorg/venv
wheelhouse=""
offline=0
index_url=""

while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv=$2; shift 2 ;;
        --wheelhouse) wheelhouse=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --index-url) index_url=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "install-taskorg.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

if [ -z "$wheelhouse" ] || [ ! -e "$wheelhouse" ]; then
    echo "install-taskorg.sh: --wheelhouse DIR|FILE.tar is required and must exist" >&2
    exit 2
fi

# What an install depends on: every file in the wheelhouse and the options.
if [ -d "$wheelhouse" ]; then
    content=$(cd "$wheelhouse" && find . -maxdepth 1 -type f | LC_ALL=C sort | xargs sha256sum)
else
    content=$(sha256sum < "$wheelhouse")
fi
stamp_now=$(printf '%s\noffline=%s index=%s\n' "$content" "$offline" "$index_url" | sha256sum | cut -d' ' -f1)
stamp_file="$venv/.taskorg-install-stamp"

if [ -x "$venv/bin/taskorg" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_now" ]; then
    exit 0
fi

if [ ! -d "$wheelhouse" ]; then
    unpacked=$(mktemp -d)
    trap 'rm -rf "$unpacked"' EXIT
    tar -xf "$wheelhouse" -C "$unpacked"
    wheelhouse=$unpacked
fi

# The newest taskorg wheel in the wheelhouse.
wheel=$(find "$wheelhouse" -maxdepth 1 -name 'taskorg-*.whl' | sort -V | tail -n 1)
if [ -z "$wheel" ]; then
    echo "install-taskorg.sh: no taskorg-*.whl in the wheelhouse" >&2
    exit 2
fi
requirements="$wheelhouse/requirements.txt"
if [ ! -f "$requirements" ]; then
    echo "install-taskorg.sh: no requirements.txt in the wheelhouse: dependencies are installed only" \
        "as pinned, with their hashes (put the repository's requirements.txt there)" >&2
    exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
    echo "changed: created virtualenv $venv"
fi

set -- --disable-pip-version-check --no-input --find-links "$wheelhouse"
if [ "$offline" = 1 ]; then
    set -- "$@" --no-index
elif [ -n "$index_url" ]; then
    set -- "$@" --index-url "$index_url"
fi

# The dependencies: exactly what requirements.txt pins, every file checked against its hashes.
"$venv/bin/pip" install --quiet "$@" --require-hashes --requirement "$requirements" >&2
# Then the taskorg wheel alone (its dependencies are all in place), reinstalled even when its
# version did not change (a rebuilt wheel of the same version is new code).
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index --no-deps --force-reinstall "$wheel" >&2
# taskorg's own dependency ranges (pyproject.toml) met by the pinned versions.
"$venv/bin/pip" check --disable-pip-version-check >&2

if [ ! -x "$venv/bin/taskorg" ]; then
    echo "install-taskorg.sh: $wheel installed but $venv/bin/taskorg is missing" >&2
    exit 1
fi
echo "$stamp_now" > "$stamp_file"
echo "changed: installed $(basename "$wheel") into $venv"
