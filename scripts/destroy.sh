#!/usr/bin/env bash
# Tear meshburst down in the only safe order: burst first (it writes into the primary), then primary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$HOME/.meshburst-state}
command -v pulumi >/dev/null || { echo "error: pulumi is not installed" >&2; exit 1; }
pulumi login "$PULUMI_BACKEND_URL"
echo "==> pulumi destroy -s burst"
pulumi destroy -s burst --yes
echo "==> pulumi destroy -s primary"
pulumi destroy -s primary --yes
