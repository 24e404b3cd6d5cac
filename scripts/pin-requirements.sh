#!/usr/bin/env bash
# Regenerate the pinned, hashed requirement files from their sources (a developer's tool,
# not part of setup). requirements.in names taskorg's direct dependencies at exact versions;
# requirements.txt adds every transitive dependency, each with the sha256 of every file PyPI
# serves for it, so `pip install --require-hashes` refuses anything else.
# requirements-dev.in adds the test tools on top; requirements-dev.txt is its hashed closure.
# Versions already pinned are kept; extra arguments go to pip-compile, e.g.
#   bash scripts/pin-requirements.sh                              (needs the package index)
#   bash scripts/pin-requirements.sh --upgrade-package requests   (move one package)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${TMPDIR:-/tmp}/taskorg-pip-tools"
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q pip-tools==7.6.2; }
cd "$repo"
extra=("$@")
compile() {
  # --no-emit-*: the file must not carry this machine's index settings.
  "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-header \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host ${extra[@]+"${extra[@]}"} --output-file "$2" "$1"
}
compile requirements.in requirements.txt
compile requirements-dev.in requirements-dev.txt
echo "pinned: $(grep -c '^[a-z]' requirements.txt) runtime and $(grep -c '^[a-z]' requirements-dev.txt) test packages, hashed"
