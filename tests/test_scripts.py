"""The set-up and tear-down scripts, run for real against recording stand-ins for pulumi, gcloud and docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("pulumi", "gcloud", "gke-gcloud-auth-plugin", "docker")


@pytest.fixture()
def fake_tools(tmp_path: Path) -> tuple[Path, Path]:
    """A bin/ of tools that log their arguments; `pulumi stack output` answers a URL."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in TOOLS:
        script = bin_dir / tool
        script.write_text(
            f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n'
            'case "$1 $2" in "stack output") echo "http://203.0.113.9/";; esac\n'
        )
        script.chmod(0o755)
    return bin_dir, log


def run(script: str, args: list[str], bin_dir: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), **env}
    return subprocess.run(
        ["bash", f"scripts/{script}", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def calls(log: Path, tool: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith(tool + " ")]


def test_up_brings_primary_up_before_burst_with_local_state(fake_tools, tmp_path):
    bin_dir, log = fake_tools
    result = run("up.sh", ["my-project-123", "europe-west4-b"], bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 0, result.stderr
    pulumi = calls(log, "pulumi")
    assert pulumi[0] == f"pulumi login file://{tmp_path}/.meshburst-state"
    assert "pulumi config set gcp:project my-project-123 -s primary" in pulumi
    assert "pulumi config set gcp:zone europe-west4-b -s burst" in pulumi
    ups = [c for c in pulumi if c.startswith("pulumi up")]
    assert ups == ["pulumi up -s primary --yes", "pulumi up -s burst --yes"]
    assert "gcloud auth configure-docker europe-west4-docker.pkg.dev --quiet" in calls(log, "gcloud")
    assert "shark site:   http://203.0.113.9/" in result.stdout


def test_up_refuses_without_a_passphrase(fake_tools, tmp_path):
    bin_dir, log = fake_tools
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    result = subprocess.run(
        ["bash", "scripts/up.sh", "my-project-123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "PATH": f"{bin_dir}:{env['PATH']}", "HOME": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 1
    assert "set PULUMI_CONFIG_PASSPHRASE" in result.stderr
    assert not log.exists(), "nothing may run before the checks pass"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: scripts/up.sh GCP_PROJECT [ZONE]"),
        (["My_Project"], "GCP_PROJECT 'My_Project' is not a project ID"),
        (["my-project-123", "mars"], "ZONE 'mars' is not a GCP zone"),
    ],
)
def test_up_explains_bad_arguments(fake_tools, tmp_path, args, message):
    bin_dir, log = fake_tools
    result = run("up.sh", args, bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 1
    assert message in result.stderr
    assert not log.exists()


def test_up_names_a_missing_tool(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Only the basics a shell needs; no pulumi.
    result = subprocess.run(
        ["bash", "scripts/up.sh", "my-project-123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "x"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not installed; see README.md, Prerequisites" in result.stderr


def test_destroy_takes_burst_down_before_primary(fake_tools, tmp_path):
    bin_dir, log = fake_tools
    result = run("destroy.sh", [], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [c for c in calls(log, "pulumi") if c.startswith("pulumi destroy")] == [
        "pulumi destroy -s burst --yes",
        "pulumi destroy -s primary --yes",
    ]
