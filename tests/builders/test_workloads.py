"""builders/workloads.py: how a workload's image is pulled."""

from __future__ import annotations

import pytest

from tools.mockrun import Run


@pytest.mark.parametrize(
    ("reference", "policy"),
    [
        ("ghcr.io/acme/{name}:latest", "Always"),
        ("ghcr.io/acme/{name}:1.0", "Always"),
        ("ghcr.io/acme/{name}@sha256:" + "ab" * 32, "IfNotPresent"),
    ],
)
def test_only_a_digest_counts_as_pinned_for_prebuilt_images(reference: str, policy: str):
    from tools.mockrun import run_both

    images = {n: reference.format(name=n) for n in ("shark-v1", "shark-v2", "worker", "frontend", "controller")}
    primary, burst = run_both({"images": images})
    for run, deployment in ((primary, "shark-shark-v2"), (primary, "worker-frontend"), (burst, "worker-worker")):
        [container] = run.one("kubernetes:apps/v1:Deployment", deployment).get("spec.template.spec.containers")
        assert container["imagePullPolicy"] == policy, (run.stack, deployment)


def test_built_images_are_digests_and_taken_from_the_node_cache(primary_run: Run, burst_run: Run):
    for run, deployment in ((primary_run, "shark-shark-v1"), (burst_run, "worker-worker")):
        [container] = run.one("kubernetes:apps/v1:Deployment", deployment).get("spec.template.spec.containers")
        assert "@sha256:" in container["image"] and container["imagePullPolicy"] == "IfNotPresent"
