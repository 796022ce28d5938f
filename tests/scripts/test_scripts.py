"""The set-up and tear-down scripts, run for real against recording stand-ins for pulumi, gcloud and docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT

TOOLS = ("pulumi", "gcloud", "gke-gcloud-auth-plugin", "docker")


# What a working machine answers: a URL for `pulumi stack output`, an account for `gcloud auth list`.
ANSWERS = 'case "$1 $2" in "stack output") echo "http://203.0.113.9/";; "auth list") echo "me@example.com";; esac\n'
# Calls that only read; anything else changes the project, the state or the docker config.
READ_ONLY = ("docker info", "gcloud auth list --filter=status:ACTIVE --format=value(account)")


def stand_in(bin_dir: Path, tool: str, log: Path, body: str = ANSWERS) -> None:
    script = bin_dir / tool
    script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n{body}')
    script.chmod(0o755)


@pytest.fixture()
def fake_tools(tmp_path: Path) -> tuple[Path, Path]:
    """A bin/ of tools that log their arguments and answer like a logged-in machine with a running docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in TOOLS:
        stand_in(bin_dir, tool, log)
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
    # The two checks ran first, before the first call that changes anything.
    assert log.read_text().splitlines()[:2] == list(READ_ONLY)


@pytest.mark.parametrize("script", ["up.sh", "destroy.sh"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_explains_the_script_and_runs_nothing(fake_tools, tmp_path, script, flag):
    bin_dir, log = fake_tools
    result = run(script, [flag], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: scripts/{script}")
    for promised in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL", "burst"):
        assert promised in result.stdout
    if script == "up.sh":
        assert "GCP_PROJECT   project ID" in result.stdout and "ZONE          zone" in result.stdout
        assert "docker info" in result.stdout and "gcloud auth login" in result.stdout
    assert not log.exists(), "help must not call any tool"


def test_up_refuses_an_unknown_option_instead_of_taking_it_for_a_project(fake_tools, tmp_path):
    bin_dir, log = fake_tools
    result = run("up.sh", ["--project", "my-project-123"], bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 1
    assert "unknown option '--project'" in result.stderr
    assert not log.exists()


def test_destroy_refuses_arguments(fake_tools, tmp_path):
    bin_dir, log = fake_tools
    result = run("destroy.sh", ["primary"], bin_dir, tmp_path)
    assert result.returncode == 1
    assert "takes no arguments (got 'primary')" in result.stderr
    assert not log.exists()


@pytest.mark.parametrize(
    ("tool", "body", "message"),
    [
        (
            "docker",
            'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2\nexit 1\n',
            "the docker daemon does not answer ('docker info' fails): start it, e.g. 'sudo systemctl start docker'",
        ),
        ("gcloud", "exit 0\n", "gcloud has no active account: run 'gcloud auth login', then run this again"),
        ("gcloud", "exit 1\n", "gcloud has no active account: run 'gcloud auth login', then run this again"),
    ],
    ids=["docker-daemon-down", "gcloud-no-account", "gcloud-fails"],
)
def test_up_stops_before_changing_anything_when_a_check_fails(fake_tools, tmp_path, tool, body, message):
    bin_dir, log = fake_tools
    stand_in(bin_dir, tool, log, body)
    result = run("up.sh", ["my-project-123"], bin_dir, tmp_path, PULUMI_CONFIG_PASSPHRASE="x")
    assert result.returncode == 1
    assert f"error: {message}" in result.stderr
    made = [call for call in log.read_text().splitlines() if call not in READ_ONLY]
    assert made == [], "nothing may change before the checks pass"
    assert not (tmp_path / ".meshburst-state").exists()


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


def comment_step() -> dict[str, Any]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    [step] = workflow["jobs"]["comment-plan"]["steps"]
    return step


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        # pulumi/actions' preview comment is the bot's last one: it must stay untouched.
        (
            [
                {"id": 11, "user": {"login": "github-actions[bot]"}, "body": "<!-- meshburst-plan-diff -->\nold"},
                {"id": 12, "user": {"login": "octocat"}, "body": "<!-- meshburst-plan-diff -->\nquoted by a human"},
                {
                    "id": 13,
                    "user": {"login": "github-actions[bot]"},
                    "body": "#### :tropical_drink: `preview` on burst",
                },
            ],
            "PATCH repos/acme/meshburst/issues/comments/11",
        ),
        (
            [{"id": 13, "user": {"login": "github-actions[bot]"}, "body": "#### :tropical_drink: `preview` on burst"}],
            "POST repos/acme/meshburst/issues/7/comments",
        ),
    ],
    ids=["updates-its-own-comment", "creates-one-when-none"],
)
def test_plan_comment_updates_only_its_own_comment(tmp_path: Path, existing: list[dict], expected: str):
    """The workflow step, run by bash against a `gh` stand-in that answers with comments filtered by the real jq."""
    step = comment_step()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "comments.json").write_text(json.dumps(existing))
    gh = bin_dir / "gh"
    gh.write_text(
        f"""#!{sys.executable}
import subprocess, sys
args = sys.argv[1:]
with open({str(tmp_path / "gh.log")!r}, "a") as log:
    if "--jq" in args:  # the listing: the stored comments through the step's own filter
        url = args[args.index("--paginate") + 1]
        assert url == "repos/acme/meshburst/issues/7/comments", url
        jq = subprocess.run(["jq", "-r", args[args.index("--jq") + 1], {str(tmp_path / "comments.json")!r}],
                            capture_output=True, text=True, check=True)
        sys.stdout.write(jq.stdout)
    else:
        method, url = args[args.index("--method") + 1], args[args.index("--method") + 2]
        body = args[args.index("-F") + 1]
        assert body == "body=@comment.md", body
        log.write(f"{{method}} {{url}}\\n" + open("comment.md").read())
"""
    )
    gh.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **step["env"]}
    env |= {"GH_REPO": "acme/meshburst", "PR_NUMBER": "7", "BODY": "### meshburst offline plan\n~ a -> b"}
    result = subprocess.run(
        ["bash", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "gh.log").read_text() == (
        f"{expected}\n<!-- meshburst-plan-diff -->\n### meshburst offline plan\n~ a -> b\n"
    )
