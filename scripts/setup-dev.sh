#!/usr/bin/env bash
# Create .venv and install the program's and the tests' Python dependencies (pinned).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
