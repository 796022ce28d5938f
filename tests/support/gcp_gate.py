"""The GCP gate: checkov's Terraform checks over the GCP resources the program registers.

The resources go through tools/tf_json.py (Pulumi inputs -> Terraform JSON), checkov's `terraform_json`
framework reads them, and every failed check must be on the written skip list of policy/gcp_controls.py:
`SKIPS` (checks that do not apply, in every run) plus, in a run that leaves an opt-in off, that opt-in's
checks. A skip that matches nothing is a finding too, so the list cannot outlive its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy.gcp_controls import SKIPS, Skip, opt_in_skips
from tests.support.gates import run_checkov
from tools.mockrun import Run
from tools.tf_json import TERRAFORM_TYPES, terraform_json

# Every opt-in turned on, with values a real project could use.
ALL_OPT_INS: Mapping[str, Any] = {
    "apiAuthorizedNetworks": ["203.0.113.0/24", "198.51.100.7/32"],
    "binaryAuthorization": "true",
    "kmsKey": "projects/meshburst-test-123/locations/us-west1/keyRings/meshburst/cryptoKeys/secrets",
    "intranodeVisibility": "true",
    "rbacSecurityGroup": "gke-security-groups@example.com",
}


@dataclass(frozen=True)
class Verdict:
    check_id: str
    tf_type: str
    resource: str
    """Terraform resource name (tools.tf_json.terraform_name)."""
    passed: bool


@dataclass
class GateResult:
    findings: list[str] = field(default_factory=list)
    """Failed checks no skip covers, and skips that covered nothing: must be empty."""
    skipped: list[tuple[Verdict, str]] = field(default_factory=list)
    """Failed checks the skip list covers, with the reason."""


def _names_by_resource(document: Mapping[str, Any]) -> dict[str, str]:
    types: dict[str, str] = {}
    for tf_type, resources in document["resource"].items():
        for name in resources:
            if name in types:
                raise ValueError(
                    f"Terraform name {name} is used by {types[name]} and {tf_type}: checkov would mix them"
                )
            types[name] = tf_type
    return types


def checkov_verdicts(document: Mapping[str, Any], work: Path) -> list[Verdict]:
    """checkov's Terraform checks on one Terraform JSON document: one verdict per (check, resource)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "meshburst.tf.json").write_text(json.dumps(document, indent=1))
    types = _names_by_resource(document)
    report = run_checkov(work, "terraform_json")
    if report["summary"].get("parsing_errors"):
        raise RuntimeError(f"checkov could not parse the Terraform JSON: {report['results'].get('parsing_errors')}")
    verdicts = []
    for key, passed in (("passed_checks", True), ("failed_checks", False)):
        for check in report["results"].get(key, []):
            # Resource checks name `resource.<name>`, graph checks `<type>.<name>`.
            name = check["resource"].split(".", 1)[1]
            verdicts.append(Verdict(check["check_id"], types[name], name, passed))
    return verdicts


def apply_skips(verdicts: Iterable[Verdict], skips: Iterable[Skip]) -> GateResult:
    """Split the failed verdicts into skipped (with reason) and findings; unused skips are findings."""
    by_key = {(s.checkov_id, TERRAFORM_TYPES[s.resource_type]): s for s in skips}
    used: set[tuple[str, str]] = set()
    result = GateResult()
    for verdict in verdicts:
        if verdict.passed:
            continue
        skip = by_key.get((verdict.check_id, verdict.tf_type))
        if skip is None:
            result.findings.append(f"{verdict.check_id} failed on {verdict.tf_type}.{verdict.resource}")
        else:
            used.add((skip.checkov_id, TERRAFORM_TYPES[skip.resource_type]))
            result.skipped.append((verdict, skip.reason))
    result.findings += [
        f"skip {s.checkov_id} on {s.resource_type} matched no failed check: remove it or say why it stays"
        for key, s in by_key.items()
        if key not in used and s in SKIPS
    ]
    return result


def gcp_gate(runs: Iterable[Run], enabled: frozenset[str], work: Path) -> GateResult:
    """The gate for one configuration: `enabled` are the opt-in keys it turns on."""
    verdicts = checkov_verdicts(terraform_json(runs), work)
    return apply_skips(verdicts, (*SKIPS, *opt_in_skips(enabled)))
