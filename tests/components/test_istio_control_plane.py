"""components/istio_control_plane.py: istiod, the gateways and their reserved addresses."""

from __future__ import annotations

from tools.mockrun import (
    FAKE_ADDRESSES,
    Run,
    run_stack,
)


def test_istio_releases_use_official_charts_at_the_pinned_version(primary_run: Run):
    releases = {
        r.get("name"): r
        for r in primary_run.of_type("kubernetes:helm.sh/v3:Release")
        if r.get("repositoryOpts.repo") == "https://istio-release.storage.googleapis.com/charts"
    }
    assert set(releases) == {"istio-base", "istiod", "istio-ingressgateway", "istio-eastwestgateway"}
    for release in releases.values():
        assert release.get("repositoryOpts.repo") == "https://istio-release.storage.googleapis.com/charts"
        assert release.get("version") == "1.30.3"
        assert release.get("namespace") == "istio-system"
        assert release.get("skipAwait") is False
    assert {n: r.get("chart") for n, r in releases.items()} == {
        "istio-base": "base",
        "istiod": "istiod",
        "istio-ingressgateway": "gateway",
        "istio-eastwestgateway": "gateway",
    }
    assert run_stack("primary", {"istioVersion": "1.29.1"}).named("istio-istiod").get("version") == "1.29.1"


def test_istiod_on_primary_is_multicluster_and_external(primary_run: Run):
    values = primary_run.named("istio-istiod").get("values")
    assert values["global"] == {
        "meshID": "mesh1",
        "multiCluster": {"clusterName": "primary"},
        "network": "network1",
        "externalIstiod": True,
    }


def test_gateways_public_ingress_and_internal_eastwest(primary_run: Run):
    ingress = primary_run.named("istio-ingress").get("values")
    assert ingress["labels"]["istio"] == "ingressgateway"
    assert ingress["service"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"]) for p in ingress["service"]["ports"]] == [
        ("status-port", 15021),
        ("http2", 80),
        ("https", 443),
        ("http-hashr", 8080),
    ]
    eastwest = primary_run.named("istio-eastwest").get("values")
    assert eastwest["networkGateway"] == "network1"
    assert eastwest["labels"]["istio"] == "eastwestgateway"
    assert eastwest["service"]["annotations"]["networking.gke.io/load-balancer-type"] == "Internal"


def test_releases_are_ordered_so_crds_and_istiod_come_first(primary_run: Run):
    urn = {r.name: r.urn for r in primary_run.resources}
    deps = {r.name: set(r.dependencies) for r in primary_run.resources}
    assert urn["istio-istio-system"] in deps["istio-base"]
    assert urn["istio-base"] in deps["istio-istiod"]
    assert urn["istio-istiod"] in deps["istio-ingress"] and urn["istio-istiod"] in deps["istio-eastwest"]
    for cr in ("istio-istiod-gateway", "istio-istiod-vs"):
        assert {urn["istio-base"], urn["istio-eastwest"]} <= deps[cr]
    assert urn["istio-istiod"] in deps["istio-apps-namespace"]


def test_istiod_is_exposed_through_the_eastwest_gateway(primary_run: Run):
    gateway = primary_run.one("kubernetes:networking.istio.io/v1:Gateway", "istio-istiod-gateway")
    assert gateway.get("spec.selector") == {"istio": "eastwestgateway"}
    assert [(s["port"]["number"], s["tls"]["mode"]) for s in gateway.get("spec.servers")] == [
        (15012, "PASSTHROUGH"),
        (15017, "PASSTHROUGH"),
    ]
    vs = primary_run.one("kubernetes:networking.istio.io/v1:VirtualService", "istio-istiod-vs")
    assert vs.get("spec.gateways") == ["istiod-gateway"]
    assert [(t["match"][0]["port"], t["route"][0]["destination"]["port"]["number"]) for t in vs.get("spec.tls")] == [
        (15012, 15012),
        (15017, 443),
    ]
    assert {t["route"][0]["destination"]["host"] for t in vs.get("spec.tls")} == {
        "istiod.istio-system.svc.cluster.local"
    }


def test_apps_namespace_has_injection_in_both_clusters(primary_run: Run, burst_run: Run):
    for run in (primary_run, burst_run):
        ns = run.named("istio-apps-namespace")
        assert ns.get("metadata.name") == "meshburst"
        assert ns.get("metadata.labels") == {"istio-injection": "enabled"}


def test_istiod_and_ingress_addresses_are_reserved_and_pinned(primary_run: Run):
    istiod = primary_run.one("gcp:compute/address:Address", "istio-istiod-address")
    assert {k: istiod.get(k) for k in ("name", "addressType", "region", "subnetwork", "project")} == {
        "name": "meshburst-istiod",
        "addressType": "INTERNAL",
        "region": "us-west1",
        "subnetwork": "default",
        "project": "meshburst-test-123",
    }
    ingress = primary_run.one("gcp:compute/address:Address", "istio-ingress-address")
    assert {k: ingress.get(k) for k in ("name", "addressType", "region", "networkTier")} == {
        "name": "meshburst-ingress",
        "addressType": "EXTERNAL",
        "region": "us-west1",
        "networkTier": "PREMIUM",
    }
    releases = {r.get("name"): r for r in primary_run.of_type("kubernetes:helm.sh/v3:Release")}
    eastwest, gateway = releases["istio-eastwestgateway"], releases["istio-ingressgateway"]
    assert eastwest.get("values")["service"]["loadBalancerIP"] == FAKE_ADDRESSES["meshburst-istiod"]
    assert gateway.get("values")["service"]["loadBalancerIP"] == FAKE_ADDRESSES["meshburst-ingress"]
    assert istiod.urn in primary_run.created_before(eastwest) and ingress.urn in primary_run.created_before(gateway)
    assert primary_run.outputs["istiodAddress"] == FAKE_ADDRESSES["meshburst-istiod"]
    assert primary_run.outputs["sharkUrl"] == f"http://{FAKE_ADDRESSES['meshburst-ingress']}/"
