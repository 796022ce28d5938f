"""The type gate (`mypy` in .ci/run, strict on the program) catches what dict literals would hide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def mypy(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "bad_stack.py"
    program.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"), str(program)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_program_type_checks(tmp_path: Path):
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout


def test_a_misspelt_component_argument_fails_the_gate(tmp_path: Path):
    result = mypy(
        "from apps.worker.split import WorkerSplit\n"
        'WorkerSplit("worker", {"namespace": "meshburst", "mode": "manual", "burst_wieght": 20,\n'
        '    "high_rps": 15.0, "low_rps": 10.0, "policy": "switch", "capacity_rps": 40.0, "controller_image": "x",\n'
        '    "prometheus_url": None, "metrics_ready": []})\n',
        tmp_path,
    )
    assert result.returncode == 1
    assert 'Extra key "burst_wieght" for TypedDict "WorkerSplitArgs"' in result.stdout
    assert 'Missing key "burst_weight" for TypedDict "WorkerSplitArgs"' in result.stdout
