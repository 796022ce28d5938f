"""stacks/primary.py: what the primary stack derives from its settings on the way to its components."""

from __future__ import annotations

from config.settings import parse_settings
from stacks.primary import dashboard_settings
from tools.mockrun import base_config


def test_the_dashboard_shows_configured_weights_only_in_the_manual_modes():
    manual = dashboard_settings(parse_settings(base_config("primary"), "primary"))
    assert (manual.canary_weight, manual.burst_weight, manual.high_rps, manual.low_rps) == (20, 0, 15.0, 10.0)
    raw = {
        **base_config("primary"),
        "meshburst:canaryMode": "progressive",
        "meshburst:burstMode": "auto",
        "meshburst:burstHighRps": "40",
        "meshburst:canaryMaxP99Ms": "250",
    }
    controlled = dashboard_settings(parse_settings(raw, "primary"))
    assert (controlled.canary_weight, controlled.burst_weight) == (None, None)
    assert (controlled.high_rps, controlled.max_p99_ms) == (40.0, 250.0)
