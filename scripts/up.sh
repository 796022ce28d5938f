#!/usr/bin/env bash
# Bring meshburst up from a fresh machine with Pulumi's local state backend (no Pulumi Cloud account).
# `scripts/up.sh --help` says how. Every check runs before anything is created.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/up.sh GCP_PROJECT [ZONE]   (e.g. scripts/up.sh my-project-123 us-west1-a; --help for more)"
show_help() {
  cat <<'HELP'
usage: scripts/up.sh GCP_PROJECT [ZONE]
       scripts/up.sh -h | --help

Brings meshburst up in a GCP project: enables the GCP APIs it uses (container, compute, artifactregistry,
iam), lets docker push to Artifact Registry in the zone's region, creates the Pulumi stacks `primary` and
`burst` (gcp:project and gcp:zone set on both), runs `pulumi up -s primary` and then `pulumi up -s burst`,
and prints the shark and String Hashr URLs. Takes about 30 minutes; running it again updates what is there.
Tear down with scripts/destroy.sh.

arguments:
  GCP_PROJECT   project ID (6-30 lowercase letters, digits and -), with billing enabled
  ZONE          zone of both clusters (default us-west1-a)

environment:
  PULUMI_CONFIG_PASSPHRASE   required (or PULUMI_CONFIG_PASSPHRASE_FILE): encrypts the kubeconfigs and
                             tokens kept in the stacks' state
  PULUMI_BACKEND_URL         where the state lives (default file://$HOME/.meshburst-state)

checked before anything is created:
  pulumi, gcloud, gke-gcloud-auth-plugin, docker and python3 (3.11+) on PATH; a docker daemon that answers
  (`docker info`); an active gcloud account (`gcloud auth login`). Pulumi also needs application-default
  credentials: `gcloud auth application-default login`.
HELP
}
die() { echo "error: $*" >&2; exit 1; }

case "${1:-}" in
  -h | --help) show_help; exit 0 ;;
  -*) die "unknown option '$1'; $usage" ;;
esac
[ $# -ge 1 ] && [ $# -le 2 ] || die "$usage"
project=$1
zone=${2:-us-west1-a}
[[ $project =~ ^[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]] || die "GCP_PROJECT '$project' is not a project ID (6-30 lowercase letters, digits, -)"
[[ $zone =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die "ZONE '$zone' is not a GCP zone such as us-west1-a"
region=${zone%-*}

for tool in pulumi gcloud gke-gcloud-auth-plugin docker python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed; see README.md, Prerequisites"
done
[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] ||
  die "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE): it encrypts kubeconfigs and tokens in the local state"
# Both would otherwise fail late: docker at the first image build, gcloud at the first API call.
docker info >/dev/null 2>&1 ||
  die "the docker daemon does not answer ('docker info' fails): start it, e.g. 'sudo systemctl start docker', then run this again"
account=$(gcloud auth list --filter=status:ACTIVE --format='value(account)' 2>/dev/null) || account=""
[ -n "$account" ] || die "gcloud has no active account: run 'gcloud auth login', then run this again"

export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$HOME/.meshburst-state}
if [[ $PULUMI_BACKEND_URL == file://* ]]; then mkdir -p "${PULUMI_BACKEND_URL#file://}"; fi

echo "==> Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt

echo "==> enabling the GCP APIs meshburst uses in $project (as $account)"
gcloud services enable container.googleapis.com compute.googleapis.com artifactregistry.googleapis.com \
  iam.googleapis.com --project "$project"
echo "==> letting docker push to ${region}-docker.pkg.dev"
gcloud auth configure-docker "${region}-docker.pkg.dev" --quiet

pulumi login "$PULUMI_BACKEND_URL"
for stack in primary burst; do
  pulumi stack select --create "$stack"
  pulumi config set gcp:project "$project" -s "$stack"
  pulumi config set gcp:zone "$zone" -s "$stack"
done

echo "==> pulumi up -s primary (GKE, Istio control plane, images, apps: about 15-20 minutes)"
pulumi up -s primary --yes
echo "==> pulumi up -s burst (second cluster, joined to the mesh: about 10 minutes)"
pulumi up -s burst --yes

echo
echo "shark site:   $(pulumi stack output sharkUrl -s primary)"
echo "String Hashr: $(pulumi stack output hashrUrl -s primary)"
echo "Tear down with scripts/destroy.sh (burst first, then primary)."
