"""Each policy of the pack bites: the smallest bad resource, and the exact message it gets."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from apps.contract import APPS_NAMESPACE
from builders.workloads import WorkloadSpec, deployment_manifest
from policy import apps, exceptions, gcp_controls
from policy.pack import RESOURCE_RULES, STACK_RULES
from policy.rules import Props

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DIGEST = "sha256:" + "a" * 64
KUBECONFIG_WITH_TOKEN = """apiVersion: v1
kind: Config
clusters:
- name: primary
  cluster: {server: https://34.1.1.1}
contexts:
- name: primary
  context: {cluster: primary, user: reader}
current-context: primary
users:
- name: reader
  user:
    token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZWFkZXIifQ.c2lnbmF0dXJl
"""


def violations(policy: str, resource_type: str, props: Props) -> list[str]:
    [rule] = [r for r in RESOURCE_RULES if r.name == policy]
    return rule.violations(resource_type, props)


@dataclass
class Resource:
    """A resource as a stack policy sees it (the fields of pulumi_policy.PolicyResource that rules read)."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str


def stack_violations(policy: str, resources: list[Resource]) -> list[tuple[str, str]]:
    [rule] = [r for r in STACK_RULES if r.name == policy]
    return rule.violations(resources)


def deployment(container: dict[str, Any], pod: dict[str, Any] | None = None, name: str = "app") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "meshburst"},
        "spec": {
            "template": {"spec": {"automountServiceAccountToken": False, **(pod or {}), "containers": [container]}}
        },
    }


def good_container() -> dict[str, Any]:
    return {
        "name": "app",
        "image": f"example/app@{DIGEST}",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    }


WORKLOAD_POLICIES = [r.name for r in RESOURCE_RULES if r.name.startswith("workload-")]


@pytest.mark.parametrize("policy", WORKLOAD_POLICIES)
def test_a_hardened_container_passes_every_workload_policy(policy: str):
    assert violations(policy, DEPLOYMENT, deployment(good_container())) == []


@pytest.mark.parametrize("policy", WORKLOAD_POLICIES)
def test_the_programs_own_workload_manifest_passes_every_workload_policy(policy: str):
    spec = WorkloadSpec(name="shark", labels={"app": "shark"}, image=f"example/shark@{DIGEST}", port=8080)
    assert violations(policy, DEPLOYMENT, deployment_manifest(spec, "meshburst")) == []


def broken(path: str, value: Any) -> dict[str, Any]:
    """A good container with one field set (value None: removed)."""
    container = good_container()
    *parents, last = path.split(".")
    node = container
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return deployment(container)


@pytest.mark.parametrize(
    ("policy", "path", "value", "message"),
    [
        (
            "workload-non-root",
            "securityContext.runAsUser",
            0,
            "Deployment meshburst/app: container 'app' runs as root: securityContext.runAsUser is 0",
        ),
        (
            "workload-non-root",
            "securityContext.runAsNonRoot",
            None,
            "Deployment meshburst/app: container 'app' may run as root: securityContext.runAsNonRoot is not true",
        ),
        (
            "workload-high-uid",
            "securityContext.runAsUser",
            1000,
            "Deployment meshburst/app: container 'app' runs as UID 1000: use 10000 or above, clear of the node's "
            "own users",
        ),
        (
            "workload-high-uid",
            "securityContext.runAsUser",
            None,
            "Deployment meshburst/app: container 'app' has no securityContext.runAsUser: the image decides which "
            "user it runs as",
        ),
        (
            "workload-read-only-root",
            "securityContext.readOnlyRootFilesystem",
            False,
            "Deployment meshburst/app: container 'app' can write its root filesystem: set "
            "securityContext.readOnlyRootFilesystem true (emptyDir for scratch)",
        ),
        (
            "workload-no-privilege-escalation",
            "securityContext.allowPrivilegeEscalation",
            None,
            "Deployment meshburst/app: container 'app' may gain privileges (setuid): set "
            "securityContext.allowPrivilegeEscalation false",
        ),
        (
            "workload-no-privilege-escalation",
            "securityContext.privileged",
            True,
            "Deployment meshburst/app: container 'app' is privileged: securityContext.privileged gives it the node",
        ),
        (
            "workload-capabilities-dropped",
            "securityContext.capabilities",
            None,
            "Deployment meshburst/app: container 'app' keeps the runtime's default capabilities: set "
            "securityContext.capabilities.drop [ALL]",
        ),
        (
            "workload-capabilities-dropped",
            "securityContext.capabilities",
            {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            "Deployment meshburst/app: container 'app' adds capabilities ['NET_ADMIN']: meshburst's workloads need "
            "none",
        ),
        (
            "workload-seccomp",
            "securityContext.seccompProfile",
            {"type": "Unconfined"},
            "Deployment meshburst/app: container 'app' has seccomp profile 'Unconfined': set "
            "securityContext.seccompProfile.type RuntimeDefault",
        ),
        (
            "workload-resources",
            "resources.limits",
            None,
            "Deployment meshburst/app: container 'app' has no resources.limits.cpu, resources.limits.memory",
        ),
        (
            "workload-probes",
            "livenessProbe",
            None,
            "Deployment meshburst/app: container 'app' has no livenessProbe",
        ),
        (
            "workload-image-pinned",
            "image",
            "redis:latest",
            "Deployment meshburst/app: container 'app' uses image 'redis:latest': pin it by digest (@sha256:...) "
            "or an exact release tag (e.g. 7.4.2)",
        ),
        (
            "workload-image-pinned",
            "image",
            "ghcr.io/acme/worker:1.2",
            "Deployment meshburst/app: container 'app' uses image 'ghcr.io/acme/worker:1.2': pin it by digest "
            "(@sha256:...) or an exact release tag (e.g. 7.4.2)",
        ),
    ],
)
def test_workload_policy_bites(policy: str, path: str, value: Any, message: str):
    assert violations(policy, DEPLOYMENT, broken(path, value)) == [message]


def test_seccomp_and_non_root_set_on_the_pod_count_for_its_containers():
    container = good_container()
    for key in ("runAsNonRoot", "runAsUser", "seccompProfile"):
        del container["securityContext"][key]
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}}
    for policy in ("workload-non-root", "workload-high-uid", "workload-seccomp"):
        assert violations(policy, DEPLOYMENT, deployment(container, pod)) == [], policy


def test_a_root_init_container_is_caught_too():
    bad = deployment(good_container())
    init = good_container() | {"name": "setup"}
    init["securityContext"] = {**init["securityContext"], "runAsUser": 0}
    bad["spec"]["template"]["spec"]["initContainers"] = [init]
    assert violations("workload-non-root", DEPLOYMENT, bad) == [
        "Deployment meshburst/app: init container 'setup' runs as root: securityContext.runAsUser is 0"
    ]


def test_every_kind_with_a_pod_template_is_checked():
    root = good_container()
    root["securityContext"]["runAsUser"] = 0
    pod_spec = {"automountServiceAccountToken": False, "containers": [root]}
    metadata = {"name": "x", "namespace": "meshburst"}
    shapes = {
        "kubernetes:apps/v1:StatefulSet": {"spec": {"template": {"spec": pod_spec}}},
        "kubernetes:apps/v1:DaemonSet": {"spec": {"template": {"spec": pod_spec}}},
        "kubernetes:batch/v1:Job": {"spec": {"template": {"spec": pod_spec}}},
        "kubernetes:batch/v1:CronJob": {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}},
        "kubernetes:core/v1:Pod": {"spec": pod_spec},
    }
    for resource_type, shape in shapes.items():
        kind = resource_type.rsplit(":", 1)[1]
        assert violations("workload-non-root", resource_type, {"metadata": metadata, **shape}) == [
            f"{kind} meshburst/x: container 'app' runs as root: securityContext.runAsUser is 0"
        ]


def test_exact_release_tags_and_digests_count_as_pinned():
    for image in ("redis:7.4.2-alpine", "ghcr.io/acme/worker:v1.2.3", f"localhost:5000/app@{DIGEST}"):
        assert violations("workload-image-pinned", DEPLOYMENT, broken("image", image)) == [], image
    for image in ("redis", "redis:7", "localhost:5000/app", "app@sha256:short"):
        assert violations("workload-image-pinned", DEPLOYMENT, broken("image", image)) != [], image


def test_a_service_account_token_needs_a_written_waiver():
    with_token = deployment(good_container(), {"automountServiceAccountToken": True}, name="shark")
    assert violations("workload-service-account-token", DEPLOYMENT, with_token) == [
        "Deployment meshburst/shark: mounts a service-account token (automountServiceAccountToken is not false); "
        "only a workload that calls the Kubernetes API gets one, with a waiver in policy/exceptions.py"
    ]
    burstwatch = deployment(good_container(), {"automountServiceAccountToken": True}, name="burstwatch")
    assert violations("workload-service-account-token", DEPLOYMENT, burstwatch) == []
    # The waiver names one object: the same name in another namespace is not waived.
    elsewhere = copy.deepcopy(burstwatch)
    elsewhere["metadata"]["namespace"] = "other"
    assert len(violations("workload-service-account-token", DEPLOYMENT, elsewhere)) == 1


def test_waivers_are_few_and_each_says_why():
    assert [(w.checkov_id, w.checkov_resource, w.policy) for w in exceptions.WAIVERS] == [
        ("CKV_K8S_38", "Deployment.meshburst.burstwatch", "workload-service-account-token"),
        ("CKV_K8S_38", "Deployment.meshburst.canarywatch", "workload-service-account-token"),
        ("CKV_K8S_43", "Deployment.meshburst.redis", None),
    ]
    assert all(len(w.reason) > 30 for w in exceptions.WAIVERS)
    policy_names = {r.name for r in RESOURCE_RULES}
    assert all(w.policy is None or w.policy in policy_names for w in exceptions.WAIVERS)
    assert exceptions.checkov_skips("meshburst", "redis") == {"CKV_K8S_43": exceptions.WAIVERS[-1].reason}


VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
DESTINATION_RULE = "kubernetes:networking.istio.io/v1:DestinationRule"


def virtual_service(*weights: int | None, subsets: tuple[str, ...] = ("v1", "v2")) -> dict[str, Any]:
    route = [
        {"destination": {"host": "shark", "subset": subset}, **({} if weight is None else {"weight": weight})}
        for subset, weight in zip(subsets, weights, strict=True)
    ]
    return {
        "metadata": {"name": "shark", "namespace": "meshburst"},
        "spec": {"hosts": ["*"], "http": [{"route": route}]},
    }


def test_route_weights_90_and_20_are_refused():
    assert violations("istio-route-weights", VIRTUAL_SERVICE, virtual_service(90, 20)) == [
        "VirtualService meshburst/shark: spec.http[0] weights sum to 110 (90 + 20), not 100"
    ]
    assert violations("istio-route-weights", VIRTUAL_SERVICE, virtual_service(80, 20)) == []
    assert violations("istio-route-weights", VIRTUAL_SERVICE, virtual_service(80, None)) == [
        "VirtualService meshburst/shark: spec.http[0] weights sum to 80 (80 + unset), not 100"
    ]
    assert violations("istio-route-weights", VIRTUAL_SERVICE, virtual_service(None, subsets=("v1",))) == []
    # Over the wire every number is a float; 80.0 + 20.0 is still 100.
    assert violations("istio-route-weights", VIRTUAL_SERVICE, virtual_service(80.0, 20.0)) == []


def destination_rule(host: str, *subsets: str, namespace: str = "meshburst") -> Resource:
    props = {
        "metadata": {"name": "shark", "namespace": namespace},
        "spec": {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]},
    }
    return Resource(DESTINATION_RULE, props, f"urn:dr:{host}:{namespace}")


def test_a_subset_no_destination_rule_defines_is_refused():
    vs = Resource(VIRTUAL_SERVICE, virtual_service(80, 20, subsets=("v1", "v3")), "urn:vs")
    assert stack_violations("istio-route-subsets", [vs, destination_rule("shark", "v1", "v2")]) == [
        (
            "urn:vs",
            "VirtualService meshburst/shark: spec.http[0].route[1] sends to subset 'v3' of "
            "shark.meshburst.svc.cluster.local, which no DestinationRule for that host defines (it defines "
            "['v1', 'v2'])",
        )
    ]


def test_subsets_match_by_host_as_istio_resolves_it():
    vs = Resource(VIRTUAL_SERVICE, virtual_service(80, 20), "urn:vs")
    fqdn_rule = destination_rule("shark.meshburst.svc.cluster.local", "v1", "v2", namespace="istio-system")
    assert stack_violations("istio-route-subsets", [vs, fqdn_rule]) == []
    # The same short name in another namespace is another service.
    other_namespace = destination_rule("shark", "v1", "v2", namespace="other")
    [(_, message)] = stack_violations("istio-route-subsets", [vs, other_namespace])[:1]
    assert message.endswith("which no DestinationRule for that host defines (there is none)")


RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            "1.30",
            "Helm release 'istiod' (chart 'istiod') has version '1.30': pin an exact version (e.g. 1.30.3), so a "
            "chart release cannot change the cluster without a reviewed change",
        ),
        (
            "~1.30.0",
            "Helm release 'istiod' (chart 'istiod') has version '~1.30.0': pin an exact version (e.g. 1.30.3), so "
            "a chart release cannot change the cluster without a reviewed change",
        ),
        (None, "Helm release 'istiod' (chart 'istiod') has no version: Helm would install whatever is newest"),
    ],
)
def test_an_unpinned_chart_is_refused(version: str | None, message: str):
    release = {"name": "istiod", "chart": "istiod", **({"version": version} if version else {})}
    assert violations("helm-chart-pinned", RELEASE, release) == [message]
    assert violations("helm-chart-pinned", RELEASE, release | {"version": "1.30.3"}) == []


def test_a_public_east_west_gateway_is_refused():
    gateway = {"name": "istio-eastwestgateway", "chart": "gateway", "version": "1.30.3"}
    public = gateway | {"values": {"networkGateway": "network1", "service": {"type": "LoadBalancer"}}}
    assert violations("mesh-control-internal", RELEASE, public) == [
        "Helm release 'istio-eastwestgateway' (chart gateway) exposes istiod's ports [15012, 15017] on a public "
        "load balancer: annotate service networking.gke.io/load-balancer-type: Internal"
    ]
    internal = copy.deepcopy(public)
    internal["values"]["service"]["annotations"] = {"networking.gke.io/load-balancer-type": "Internal"}
    assert violations("mesh-control-internal", RELEASE, internal) == []
    ingress = gateway | {"values": {"service": {"ports": [{"name": "http2", "port": 80, "targetPort": 80}]}}}
    assert violations("mesh-control-internal", RELEASE, ingress) == []


def test_a_public_load_balancer_service_on_istiods_port_is_refused():
    service = {
        "metadata": {"name": "istiod-lb", "namespace": "istio-system"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 15012, "targetPort": 15012}]},
    }
    assert violations("mesh-control-internal", "kubernetes:core/v1:Service", service) == [
        "Service istio-system/istiod-lb exposes istiod's ports [15012] on a public load balancer: annotate it "
        "networking.gke.io/load-balancer-type: Internal"
    ]


def test_a_plain_text_kubeconfig_outside_a_secret_is_refused():
    config_map = {"metadata": {"name": "access", "namespace": "meshburst"}, "data": {"config": KUBECONFIG_WITH_TOKEN}}
    assert violations("credentials-secret", "kubernetes:core/v1:ConfigMap", config_map) == [
        "data.config holds a kubeconfig: put it in a Kubernetes Secret's stringData, which stays secret"
    ]
    secret = {"metadata": {"name": "access", "namespace": "meshburst"}, "stringData": {"config": KUBECONFIG_WITH_TOKEN}}
    assert violations("credentials-secret", "kubernetes:core/v1:Secret", secret) == []


def test_a_token_in_an_annotation_is_refused():
    token = KUBECONFIG_WITH_TOKEN.rsplit("token: ", 1)[1].strip()
    service = {"metadata": {"name": "x", "namespace": "meshburst", "annotations": {"reader": token}}}
    assert violations("credentials-secret", "kubernetes:core/v1:Service", service) == [
        "metadata.annotations.reader holds a bearer token: put it in a Kubernetes Secret's stringData, which "
        "stays secret"
    ]


def test_a_service_account_key_in_a_provider_is_refused():
    pem = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"
    key_file = f'{{"type": "service_account", "private_key": "{pem}"}}'
    assert violations("credentials-secret", "pulumi:providers:gcp", {"project": "p", "credentials": key_file}) == [
        "credentials holds a private key: put it in a Kubernetes Secret, or use workload identity"
    ]


def test_a_provider_kubeconfig_must_not_embed_a_credential():
    assert violations("credentials-secret", "pulumi:providers:kubernetes", {"kubeconfig": KUBECONFIG_WITH_TOKEN}) == [
        "kubeconfig embeds a credential (token): use an exec plugin (gke-gcloud-auth-plugin), so no credential sits "
        "in the stack's state"
    ]
    exec_plugin = KUBECONFIG_WITH_TOKEN.split("    token:")[0] + "    exec: {command: gke-gcloud-auth-plugin}\n"
    assert violations("credentials-secret", "pulumi:providers:kubernetes", {"kubeconfig": exec_plugin}) == []


def test_a_credential_env_var_must_come_from_a_secret():
    container = good_container() | {
        "env": [{"name": "HASHR_TOKEN", "value": "s3cr3t"}, {"name": "MAX_RPS", "value": "50"}]
    }
    assert violations("credentials-secret", DEPLOYMENT, deployment(container)) == [
        "spec.template.spec.containers[0].env[0] sets HASHR_TOKEN to a literal value: read it from a Secret "
        "(valueFrom.secretKeyRef)"
    ]
    container["env"][0] = {"name": "HASHR_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hashr", "key": "token"}}}
    assert violations("credentials-secret", DEPLOYMENT, deployment(container)) == []


def labelled(resource_type: str, name: str, props: dict[str, Any], namespace: str = "meshburst") -> Resource:
    return Resource(resource_type, {"metadata": {"name": name, "namespace": namespace}, **props}, f"urn:{name}")


def app_resources() -> list[Resource]:
    template = {"spec": {"template": {"metadata": {"labels": {"app": "shark", "version": "v1"}}}}}
    return [
        labelled(apps.DEPLOYMENT, "shark-v1", template),
        labelled(apps.NETWORK_POLICY, "shark-v1", {"spec": {"podSelector": {"matchLabels": {"app": "shark"}}}}),
        labelled(apps.PDB, "shark-v1", {"spec": {"selector": {"matchLabels": {"app": "shark", "version": "v1"}}}}),
    ]


def test_a_deployment_without_network_policy_or_pdb_is_refused():
    assert stack_violations("apps-network-policy-and-pdb", app_resources()) == []
    deployment_only = app_resources()[:1]
    assert stack_violations("apps-network-policy-and-pdb", deployment_only) == [
        (
            "urn:shark-v1",
            "Deployment meshburst/shark-v1: no NetworkPolicy and no PodDisruptionBudget selects its pods "
            "(labels {'app': 'shark', 'version': 'v1'})",
        )
    ]
    # A PDB for another version, or a NetworkPolicy in another namespace, does not count.
    wrong = app_resources()
    wrong[1] = labelled(apps.NETWORK_POLICY, "x", {"spec": {"podSelector": {}}}, namespace="other")
    wrong[2] = labelled(apps.PDB, "x", {"spec": {"selector": {"matchLabels": {"version": "v2"}}}})
    assert [m for _, m in stack_violations("apps-network-policy-and-pdb", wrong)] == [
        "Deployment meshburst/shark-v1: no NetworkPolicy and no PodDisruptionBudget selects its pods "
        "(labels {'app': 'shark', 'version': 'v1'})"
    ]
    # Deployments elsewhere (istio-system's charts) are not the apps namespace's.
    assert stack_violations("apps-network-policy-and-pdb", [labelled(apps.DEPLOYMENT, "x", {}, "istio-system")]) == []


def test_the_pack_and_the_program_agree_on_the_apps_namespace():
    assert apps.APPS_NAMESPACE == APPS_NAMESPACE


def test_every_always_on_gcp_control_is_a_pack_policy():
    names = {r.name for r in RESOURCE_RULES}
    always_on = {c.id for c in gcp_controls.CONTROLS if c.opt_in is None}
    assert always_on <= names
    assert not {c.id for c in gcp_controls.CONTROLS if c.opt_in is not None} & names


def test_an_open_firewall_is_refused():
    rule = {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"], "targetTags": ["meshburst-primary"]}
    assert violations("firewall-not-open", gcp_controls.FIREWALL, rule) == [
        "sourceRanges has ['0.0.0.0/0']: ingress open to the internet"
    ]


def test_a_cluster_without_workload_identity_or_shielded_nodes_is_refused():
    cluster = {"enableShieldedNodes": False}
    assert violations("cluster-workload-identity", gcp_controls.CLUSTER, cluster) == [
        "workloadIdentityConfig.workloadPool is not set: pods would act as the node's service account"
    ]
    assert violations("cluster-shielded-nodes", gcp_controls.CLUSTER, cluster) == [
        "enableShieldedNodes is False, expected True: nodes would not be shielded"
    ]


def intent_config_map(route: dict[str, Any] | None = None, writer: str = "controller", text: str | None = None) -> dict:
    from apps.lib.meshroute import RouteSpec

    spec = RouteSpec(
        name="shark",
        namespace="meshburst",
        host="shark",
        subsets={"v1": {"version": "v1"}, "v2": {"version": "v2"}},
        share_to_second=20,
        port=8080,
    )
    document = {"version": 1, "writer": writer, "policy": "canary", "route": route or spec.to_json(), "settings": {}}
    document["settings"]["steps"] = [5, 50, 100]
    return {
        "metadata": {"name": "shark-intent", "namespace": "meshburst"},
        "data": {"intent.json": text if text is not None else json.dumps(document)},
    }


CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def test_an_intent_the_controller_can_render_passes():
    assert violations("istio-route-intent", CONFIG_MAP, intent_config_map()) == []
    assert violations("istio-route-intent", CONFIG_MAP, intent_config_map(writer="pulumi", text="{}")) == []
    assert violations("istio-route-intent", CONFIG_MAP, {"metadata": {"name": "other"}, "data": {"k": "v"}}) == []


def test_an_intent_the_controller_cannot_read_is_refused():
    [message] = violations("istio-route-intent", CONFIG_MAP, intent_config_map(text="{not json"))
    assert message.startswith("ConfigMap meshburst/shark-intent: intent.json is not the intent the controller reads")
    broken = intent_config_map()
    document = json.loads(broken["data"]["intent.json"])
    del document["route"]["subsets"]
    broken["data"]["intent.json"] = json.dumps(document)
    [message] = violations("istio-route-intent", CONFIG_MAP, broken)
    assert "KeyError" in message and "subsets" in message


def test_subsets_of_a_rendered_route_must_exist_too():
    intent = Resource(CONFIG_MAP, intent_config_map(), "urn:intent")
    assert stack_violations("istio-route-subsets", [intent, destination_rule("shark", "v1", "v2")]) == []
    found = stack_violations("istio-route-subsets", [intent, destination_rule("shark", "v1")])
    # Rendered at 0, 5, 20, 50 and 100 %: every rendering names v2, which the rule lacks.
    assert len(found) == 5
    assert all(urn == "urn:intent" and "sends to subset 'v2'" in message for urn, message in found)


def test_a_mirror_to_a_subset_no_destination_rule_defines_is_refused():
    props = virtual_service(80, 20)
    props["spec"]["http"][0]["mirrors"] = [
        {"destination": {"host": "shark", "subset": "v9"}, "percentage": {"value": 5}}
    ]
    vs = Resource(VIRTUAL_SERVICE, props, "urn:vs")
    [(urn, message)] = stack_violations("istio-route-subsets", [vs, destination_rule("shark", "v1", "v2")])
    assert urn == "urn:vs"
    assert "spec.http[0].mirrors[0] sends to subset 'v9'" in message
