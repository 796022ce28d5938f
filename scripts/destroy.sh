#!/usr/bin/env bash
# Tear meshburst down in the only safe order: burst first (it writes into the primary), then primary.
set -euo pipefail
cd "$(dirname "$0")/.."

show_help() {
  cat <<'HELP'
usage: scripts/destroy.sh
       scripts/destroy.sh -h | --help

Destroys everything scripts/up.sh created: `pulumi destroy -s burst` first (the burst stack writes its
remote secret into the primary cluster and reads the primary's outputs), then `pulumi destroy -s primary`.
The stacks themselves and their config stay; `pulumi stack rm STACK` removes them. Takes over 10 minutes.

environment:
  PULUMI_CONFIG_PASSPHRASE   the passphrase scripts/up.sh ran with (or PULUMI_CONFIG_PASSPHRASE_FILE)
  PULUMI_BACKEND_URL         where the state lives (default file://$HOME/.meshburst-state)
HELP
}
case "${1:-}" in
  -h | --help) show_help; exit 0 ;;
esac
[ $# -eq 0 ] || { echo "error: scripts/destroy.sh takes no arguments (got '$*'); see scripts/destroy.sh --help" >&2; exit 1; }

export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$HOME/.meshburst-state}
command -v pulumi >/dev/null || { echo "error: pulumi is not installed" >&2; exit 1; }
pulumi login "$PULUMI_BACKEND_URL"
echo "==> pulumi destroy -s burst"
pulumi destroy -s burst --yes
echo "==> pulumi destroy -s primary"
pulumi destroy -s primary --yes
