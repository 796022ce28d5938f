#!/usr/bin/env bash
# Bring meshburst up from a fresh machine with Pulumi's local state backend (no Pulumi Cloud account):
#   scripts/up.sh GCP_PROJECT [ZONE]
# Needs: pulumi, gcloud (logged in: `gcloud auth login` and `gcloud auth application-default login`),
# gke-gcloud-auth-plugin, docker (to build the images), python3 >= 3.11, and PULUMI_CONFIG_PASSPHRASE
# (encrypts the stacks' secrets in the local state). State goes to $PULUMI_BACKEND_URL, default
# file://$HOME/.meshburst-state.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "error: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/up.sh GCP_PROJECT [ZONE]   (e.g. scripts/up.sh my-project-123 us-west1-a)"
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

export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$HOME/.meshburst-state}
if [[ $PULUMI_BACKEND_URL == file://* ]]; then mkdir -p "${PULUMI_BACKEND_URL#file://}"; fi

echo "==> Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt

echo "==> enabling the GCP APIs meshburst uses in $project"
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
