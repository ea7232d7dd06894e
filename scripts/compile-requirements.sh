#!/usr/bin/env bash
# Recompile the hashed dependency sets from requirements/*.in (see requirements/README.md).
# pip-tools runs from its own throwaway virtualenv, never the project's. Existing pins are kept unless
# an .in file asks otherwise; pass --upgrade (or --upgrade-package NAME) to move them.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${PIP_TOOLS_VENV:-/tmp/lwm-pip-tools}"
[ -x "$tools/bin/pip-compile" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install --quiet pip-tools; }
compile() {
  "$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
    --no-emit-index-url "$@"
}
# Order matters: demo.txt is constrained by requirements.txt, dev.txt by both, so the sets agree on every pin.
compile "$@" -o requirements.txt requirements/base.in
compile "$@" -o requirements/demo.txt requirements/demo.in
compile "$@" -o requirements/dev.txt requirements/dev.in
