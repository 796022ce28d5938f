"""README.md stays true: its config table, its output names and its test command match the code."""

from __future__ import annotations

import re

from config.settings import DEFAULTS
from tests.support.paths import ROOT
from tools.mockrun import Run

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_config_table_lists_every_key_the_program_reads_with_its_default():
    rows = [line for line in section("Configuration").splitlines() if line.startswith("| `")]
    documented: dict[str, str] = {}
    for row in rows:
        keys_cell, _stack, _allowed, default_cell = (cell.strip() for cell in row.strip("|").split("|"))
        keys = re.findall(r"`([^`]+)`", keys_cell)
        # "`minNodes`, `maxNodes`" pairs with "`1`, `5`"; a default in words ("required") covers every key.
        defaults = re.findall(r"`([^`]+)`", default_cell)
        if len(defaults) != len(keys):
            defaults = [default_cell] * len(keys)
        for key, default in zip(keys, defaults, strict=True):
            documented[key if ":" in key else f"meshburst:{key}"] = default
    assert set(documented) == set(DEFAULTS)
    for key, default in DEFAULTS.items():
        if default is not None:
            assert documented[key] == default, f"README says {key} defaults to {documented[key]!r}, code: {default!r}"


def test_outputs_named_in_the_readme_are_what_the_stacks_export(default_runs: tuple[Run, Run]):
    primary, burst = default_runs
    text = " ".join(section("Configuration").split())
    primary_part = text[text.index("Stack outputs — primary:") : text.index("Burst:")]
    burst_part = text[text.index("Burst:") :]
    assert set(re.findall(r"`(\w+)`", primary_part)) == set(primary.outputs)
    assert set(re.findall(r"`(\w+)`", burst_part.split(".")[0])) == set(burst.outputs)


def test_ci_runs_the_readme_test_command():
    assert "scripts/test.sh" in section("Two commands")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == "bash scripts/test.sh", "the README's test command is the last thing CI runs"
