"""The deploy's critical path: `pulumi up -s primary`, then `-s burst`, from the program's own resource graph.

    .venv/bin/python bench/critical_path.py

Runs both stacks under the test mocks (default config), takes every resource and what the engine makes it
wait for, gives each a typical creation time (printed first, each with its source: estimates, since
nothing here reaches GCP) and prints, per stack, the chain of waits that decides when it ends, the
deploy's total, and how far that is above the irreducible chain (cluster, pool, Istio, the east-west gateway,
then the burst cluster, its pool and the mesh join). The figures are a model: compare runs of this script
with each other, not with a stopwatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.critical_path import FIGURES, DeployPath, Step, deploy_path, minutes  # noqa: E402
from tools.mockrun import run_both  # noqa: E402

TARGET = 1.10


def _row(step: Step) -> str:
    node = step.node
    return f"  {node.name:42} {node.type:58} {minutes(step.start):>6} {minutes(step.finish):>6}"


def report(deploy: DeployPath) -> str:
    lines = ["Typical creation times (not measured: estimates, with what each is based on)"]
    for figure in FIGURES.values():
        lines.append(f"  {figure.what:52} {figure.seconds:>5.0f} s  {figure.source}")
    header = f"  {'resource':42} {'type':58} {'start':>6} {'finish':>6}"
    for stack in deploy.stacks:
        lines += [
            "",
            f"Critical path of `pulumi up -s {stack.stack}` ({minutes(stack.start)} to {minutes(stack.finish)})",
        ]
        lines += [header, *(_row(step) for step in stack.path)]
    lines += ["", "Irreducible chain, end to end", header, *(_row(step) for step in deploy.chain)]
    lines += [
        "",
        f"deploy total (primary, then burst): {minutes(deploy.total)}",
        f"irreducible chain:                  {minutes(deploy.chain_seconds)}",
        f"ratio: {deploy.ratio:.3f} (target at most {TARGET:.2f})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    primary, burst = run_both()
    print(report(deploy_path([primary, burst])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
