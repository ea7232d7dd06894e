#!/usr/bin/env bash
# Debian packages the tests and demo need: Chromium for browser tests, Fashion-MNIST data,
# bubblewrap (the sandbox of uploaded models; without it the worker refuses to run them),
# PostgreSQL server binaries and Redis for the fault tests.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v docker-compose >/dev/null || need+=(docker-compose)
# tests/faults start their own PostgreSQL cluster (initdb/pg_ctl) and redis-server on free ports.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install ${need[*]}" >&2; exit 1; fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
