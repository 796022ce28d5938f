"""The gates every rendered object must pass: Kubernetes and Istio schemas, chart keys, checkov, zizmor.

Each gate is a function returning its findings (empty = pass), so tests can run it on what the program
renders and on deliberately broken objects, to show it bites.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from apps.lib.meshroute import RouteSpec, virtual_service_manifest
from builders.routes import INTENT_KEY
from components.gke_cluster import KUBERNETES_MINOR
from tests.support.paths import DATA, ROOT
from tools.chart_keys import unknown_keys
from tools.mockrun import Run
from tools.plan import manifest

CHART_KEYS = DATA / "chart-keys"
ISTIO_SCHEMAS = ROOT / "tools" / "istio-schemas"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")


def objects(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """Every Kubernetes and Istio object the runs would apply, as manifests, and every route a controller would
    write from their intents."""
    runs = list(runs)
    return [manifest(r) for run in runs for r in run.resources if r.is_object] + controller_routes(runs)


def controller_routes(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """The VirtualServices the controllers render from each intent Pulumi writes (writer=controller), at every
    share they can set: the starting one, 0, 100 and each canary step. Pulumi never applies these; they pass the
    same gates as what it does apply."""
    rendered = []
    for run in runs:
        for config_map in run.of_type("kubernetes:core/v1:ConfigMap"):
            document = json.loads((config_map.inputs.get("data") or {}).get(INTENT_KEY, "{}"))
            if document.get("writer") != "controller":
                continue
            spec = RouteSpec.from_json(document["route"])
            shares = {spec.share_to_second, 0, 100, *document["settings"].get("steps", [])}
            rendered += [virtual_service_manifest(spec.with_share(share)) for share in sorted(shares)]
    return rendered


def releases(runs: Iterable[Run]) -> list[Mapping[str, Any]]:
    return [r.inputs for run in runs for r in run.resources if r.type == "kubernetes:helm.sh/v3:Release"]


def is_istio(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(ISTIO_GROUPS)


def kubernetes_findings(objs: Iterable[Mapping[str, Any]], version: str = f"{KUBERNETES_MINOR}.0") -> list[str]:
    """Strict validation (unknown fields are errors) against the Kubernetes OpenAPI schemas of `version`."""
    findings = []
    for obj in objs:
        if is_istio(obj):
            continue
        try:
            kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            findings.append(f"{obj['kind']} {obj['metadata'].get('name')}: {path}: {error.message}")
    return findings


def istio_findings(objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """@kubernetes-models/istio, run by node: its schema validators, and unknown fields through its types."""
    istio = [dict(o) for o in objs if is_istio(o)]
    if not istio:
        return []
    if not (ISTIO_SCHEMAS / "node_modules" / "@kubernetes-models" / "istio").is_dir():
        raise RuntimeError("Istio schemas are not installed: run scripts/test.sh (npm ci in tools/istio-schemas)")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: scripts/test.sh installs it")
    done = subprocess.run(
        [node, "validate.mjs"],
        cwd=ISTIO_SCHEMAS,
        input=json.dumps(istio),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the Istio validator failed: {done.stderr}")
    return [f"{r['kind']} {r['name']}: {e}" for r in json.loads(done.stdout) for e in r["errors"]]


def chart_key_findings(release_inputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Values keys each chart does not know, checked against the key list vendored for its version."""
    findings = []
    for release in release_inputs:
        chart, version = release["chart"], release["version"]
        key_file = CHART_KEYS / f"{chart}-{version}.json"
        if not key_file.exists():
            findings.append(
                f"{chart} {version}: no key list in {key_file.relative_to(ROOT)}; make one with tools.chart_keys"
            )
            continue
        known = json.loads(key_file.read_text())
        findings += [
            f"{release['name']} ({chart} {version}): unknown key {key}"
            for key in unknown_keys(release["values"], known)
        ]
    return findings


def run_checkov(folder: Path, framework: str) -> dict[str, Any]:
    """checkov's JSON report on a folder, offline. No report at all is an error, never an empty pass."""
    if not CHECKOV.exists():
        raise RuntimeError("checkov is not installed: run scripts/test.sh (it keeps checkov in .venv-checkov)")
    # Offline: no download of Prisma Cloud guidelines or mappings.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", framework, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if "{" not in done.stdout:
        raise RuntimeError(f"checkov printed no report (exit {done.returncode}): {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout[done.stdout.find("{") :])
    return report


def checkov_results(objs: Iterable[Mapping[str, Any]], work: Path) -> dict[str, Any]:
    """checkov's Kubernetes checks on the manifests: {'failed': [(check, resource)], 'skipped': [...]}."""
    work.mkdir(parents=True, exist_ok=True)
    for i, obj in enumerate(o for o in objs if not is_istio(o)):
        (work / f"{i:03d}-{obj['kind']}-{obj['metadata'].get('name')}.yaml").write_text(yaml.safe_dump(dict(obj)))
    report = run_checkov(work, "kubernetes")
    results = report.get("results", {})
    return {
        "summary": report.get("summary", {}),
        "failed": [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])],
        "skipped": [
            (c["check_id"], c["resource"], c.get("check_result", {}).get("suppress_comment", ""))
            for c in results.get("skipped_checks", [])
        ],
    }


def zizmor_findings(workflows: Iterable[Path], min_severity: str = "medium") -> list[str]:
    """zizmor's audit of GitHub workflow files, offline, auditor persona, at `min_severity` and above."""
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    paths = [str(p) for p in workflows]
    done = subprocess.run(
        [zizmor, "--offline", "--persona", "auditor", "--min-severity", min_severity, "--format", "json", *paths],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 0: no findings; 10-14: findings, by highest severity. Anything else is zizmor failing.
    if done.returncode not in (0, 10, 11, 12, 13, 14):
        raise RuntimeError(f"zizmor failed ({done.returncode}): {done.stderr}")
    return [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} in "
        f"{f['locations'][0]['symbolic']['key']['Local']['verbatim_path']}"
        for f in json.loads(done.stdout or "[]")
    ]
