"""How long evaluating each stack under mocks takes, next to the floor of starting Python with the SDKs imported.

    .venv/bin/python bench/program_eval.py [--runs 5]

Each measurement is a fresh `python` process, as `pulumi up` starts one: the floor imports pulumi,
pulumi_gcp and pulumi_kubernetes and exits; a stack run imports the same, runs __main__.py under the
test mocks (tests/harness.py) and exits. Medians over --runs, measured in one run of this script.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import pulumi, pulumi_gcp, pulumi_kubernetes"
# The SDKs load submodules lazily; this floor also loads the ones the program uses.
USED_MODULES = [
    "pulumi_gcp.container",
    "pulumi_gcp.compute",
    "pulumi_gcp.projects",
    "pulumi_gcp.serviceaccount",
    "pulumi_gcp.artifactregistry",
    "pulumi_kubernetes.helm.v3",
    "pulumi_kubernetes.apps.v1",
    "pulumi_kubernetes.core.v1",
    "pulumi_kubernetes.policy.v1",
    "pulumi_kubernetes.autoscaling.v2",
    "pulumi_kubernetes.apiextensions",
    "pulumi_docker_build",
]
FLOOR_USED = FLOOR + "; import " + ", ".join(USED_MODULES)
PRIMARY = "from tools.mockrun import run_stack; run_stack('primary')"
BOTH = "from tools.mockrun import run_both; run_both()"


def timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per measurement (1-50)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be 1..50")
    timed(FLOOR)  # warm the file cache so the first measurement is not an outlier
    cases = {
        "floor": ("python + import pulumi, pulumi_gcp, pulumi_kubernetes", FLOOR),
        "used": ("floor + the SDK submodules the program uses", FLOOR_USED),
        "primary": ("primary stack under mocks", PRIMARY),
        "both": ("primary, then burst through its outputs", BOTH),
    }
    median: dict[str, float] = {}
    for key, (label, code) in cases.items():
        samples = [timed(code) for _ in range(args.runs)]
        median[key] = statistics.median(samples)
        print(f"{label:<56} median {median[key]:.2f} s  (min {min(samples):.2f}, max {max(samples):.2f})")
    print(
        f"primary: {median['primary'] / median['floor']:.2f}x the import floor, "
        f"{median['primary'] / median['used']:.2f}x the floor with submodules "
        f"({median['primary'] - median['used']:.2f} s of program); "
        f"burst adds {median['both'] - median['primary']:.2f} s"
    )


if __name__ == "__main__":
    main()
