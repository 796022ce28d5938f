"""components/mesh_firewall.py: pod CIDRs to node tags, nothing wider, logged."""

from __future__ import annotations

from tools.mockrun import (
    FAKE_POD_CIDRS,
    Run,
)


def test_firewall_allows_only_pod_cidrs_to_node_tags(burst_run: Run):
    [rule] = burst_run.of_type("gcp:compute/firewall:Firewall")
    assert rule.get("direction") == "INGRESS"
    assert rule.get("priority") == 900
    assert rule.get("network") == "default"
    assert [a["protocol"] for a in rule.get("allows")] == ["tcp", "udp", "icmp", "esp", "ah", "sctp"]
    assert all("ports" not in a for a in rule.get("allows"))
    assert rule.get("sourceRanges") == [FAKE_POD_CIDRS["meshburst-primary"], FAKE_POD_CIDRS["meshburst-burst"]]
    assert rule.get("targetTags") == ["meshburst-primary", "meshburst-burst"]
    assert "sourceTags" not in rule.inputs and "destinationRanges" not in rule.inputs


def test_the_mesh_firewall_rule_logs(burst_run: Run):
    rule = burst_run.one("gcp:compute/firewall:Firewall", "mesh-pods")
    assert rule.get("logConfig") == {"metadata": "INCLUDE_ALL_METADATA"}
