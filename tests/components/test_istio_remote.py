"""components/istio_remote.py: the burst cluster as a remote of the primary's istiod."""

from __future__ import annotations

from tools.mockrun import (
    FAKE_ADDRESSES,
    Run,
)


def test_burst_is_a_remote_of_the_primary(burst_run: Run):
    ns = burst_run.named("istio-istio-system")
    assert ns.get("metadata.annotations") == {"topology.istio.io/controlPlaneClusters": "primary"}
    releases = {r.get("name"): r for r in burst_run.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {"istio-base", "istiod"}
    assert releases["istio-base"].get("values") == {"profile": "remote"}
    values = releases["istiod"].get("values")
    assert values["profile"] == "remote"
    assert values["global"] == {
        "meshID": "mesh1",
        "multiCluster": {"clusterName": "burst"},
        "network": "network1",
        "configCluster": True,
        "remotePilotAddress": FAKE_ADDRESSES["meshburst-istiod"],
    }
    assert values["istiodRemote"] == {"injectionPath": "/inject/cluster/burst/net/network1"}
