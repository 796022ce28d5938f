#!/usr/bin/env bash
# The test command. On a fresh machine it installs what the tests need, then runs them:
#   system packages  redis-server, prometheus, chromium (Debian/Ubuntu, via apt-get; root or sudo)
#   Python           .venv with requirements-dev.txt (pinned)
#   tests            pytest: the program under Pulumi mocks, the apps on loopback, the pages in Chromium
# Extra arguments go to pytest, e.g. `scripts/test.sh -k canary -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v redis-server >/dev/null || need_packages+=(redis-server)
command -v prometheus >/dev/null || need_packages+=(prometheus)
command -v chromium >/dev/null || command -v google-chrome >/dev/null || need_packages+=(chromium)
if [ "${#need_packages[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "error: the tests need ${need_packages[*]}; install them with your package manager and run again" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "==> installing ${need_packages[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || [ requirements-dev.txt -nt .venv/.installed ] || [ requirements.txt -nt .venv/.installed ]; then
  echo "==> creating .venv and installing requirements-dev.txt"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  touch .venv/.installed
fi

echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
