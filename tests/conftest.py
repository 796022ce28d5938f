"""Shared fixtures: program runs under mocks are cached per config, and the Pulumi runtime is reset after each test."""

from __future__ import annotations

import pytest
from pulumi.runtime.settings import reset_options

from tools.mockrun import Run, run_both


@pytest.fixture(autouse=True)
def _clean_pulumi_runtime():
    """No test leaks mocks, config or a root stack into the next."""
    yield
    import pulumi

    pulumi.runtime.set_all_config({})
    reset_options()


@pytest.fixture(scope="session")
def default_runs() -> tuple[Run, Run]:
    """The primary and burst stacks with default config, burst reading the primary's outputs."""
    runs = run_both()
    import pulumi

    pulumi.runtime.set_all_config({})
    reset_options()
    return runs


@pytest.fixture(scope="session")
def primary_run(default_runs: tuple[Run, Run]) -> Run:
    return default_runs[0]


@pytest.fixture(scope="session")
def burst_run(default_runs: tuple[Run, Run]) -> Run:
    return default_runs[1]
