#!/usr/bin/env bash
# Set up agent-slo on a Debian/Ubuntu machine: the real servers the demo and the tests use
# (Prometheus + promtool, Alertmanager + amtool, VictoriaMetrics + vmalert, docker-compose for the
# offline compose check) and simdjson + g++ (the exporter's C++ ingest scanner) from apt, and the
# Python package with its dev tools into ./.venv.
# Idempotent: a second run installs nothing new. AGENT_SLO_SKIP_APT=1 skips the apt step.
set -euo pipefail
cd "$(dirname "$0")"

declare -A BINARY_OF=(
  [prometheus]=promtool
  [prometheus-alertmanager]=amtool
  [victoria-metrics]=vmalert
  [docker-compose]=docker-compose
)
missing=()
for pkg in "${!BINARY_OF[@]}"; do
  command -v "${BINARY_OF[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done
# the exporter's C++ ingest scanner (optional: without it the same work runs in Python, slower)
[ -f /usr/include/simdjson.h ] || missing+=(libsimdjson-dev)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=(python3-dev)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ "${#missing[@]}" -gt 0 ] && [ "${AGENT_SLO_SKIP_APT:-0}" != 1 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
  else
    echo "setup: no apt-get here; install ${missing[*]} yourself (the demo runs without them and says what it skipped)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# the client SDK first: the server's demo depends on it (`agent-slo-client`, from this repository)
.venv/bin/python -m pip install -q --disable-pip-version-check -e clients/python
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
if .venv/bin/python -c 'import agentslo.exporter._scan' 2>/dev/null; then
  echo "setup: ready (.venv/bin/agent-slo; C++ ingest scanner built)"
else
  echo "setup: ready (.venv/bin/agent-slo; C++ ingest scanner NOT built: ingest runs in pure Python, slower)"
fi
