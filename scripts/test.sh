#!/usr/bin/env bash
# The test command: the program under Pulumi mocks, the apps on loopback, the pages in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
