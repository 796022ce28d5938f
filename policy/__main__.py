"""The policy pack the Pulumi CLI runs: `pulumi preview --policy-pack policy/`.

The CLI starts this file as a script (`python policy/`), so the folder above it is put on the path to import
the rules as the package `policy`, the same modules the test suite imports. PolicyPack then serves them over
gRPC until the CLI stops it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.pack import PACK_NAME, policies

PolicyPack(
    PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="meshburst's gates at preview: workload security, Istio routes, pinned charts, credentials, GKE",
)
