"""The cloud-burst app under mocks: every resource and label in both stacks, and the worker split."""

from __future__ import annotations

import json

from tools.mockrun import FAKE_RANDOM_PASSWORD, Run, run_stack

VS = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"


def container(run: Run, name: str) -> dict:
    return run.one(DEPLOYMENT, name).get("spec.template.spec.containers")[0]


def env(run: Run, name: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(run, name)["env"]}


def split(run: Run) -> dict[str, int]:
    vs = run.one(VS, "worker-split-virtual-service")
    [rule] = vs.get("spec.http")
    return {r["destination"]["subset"]: r["weight"] for r in rule["route"]}


def test_primary_runs_redis_frontend_and_worker(primary_run: Run):
    deployments = {r.get("metadata.name"): r for r in primary_run.of_type(DEPLOYMENT)}
    assert {"redis", "frontend", "worker"} <= set(deployments)
    assert deployments["worker"].get("metadata.labels") == {"app": "worker", "cluster-type": "primary-cluster"}
    assert deployments["worker"].get("spec.replicas") == 2
    assert env(primary_run, "worker-worker") == {"CLUSTER_NAME": "primary", "REDIS_URL": "redis-cache-service:6379"}
    assert env(primary_run, "worker-frontend") == {
        "PROCESSOR_URL": "http://worker-service",
        "REDIS_URL": "redis-cache-service:6379",
        "HASHR_TOKEN_FILE": "/var/run/secrets/hashr/token",
        "MAX_RPS": "100",
        "SPLIT_MODE": "manual",
        "SPLIT_SHARE_FILE": "/etc/meshburst/split/intent.json",
    }
    assert deployments["frontend"].get("spec.replicas") == 1
    assert container(primary_run, "worker-worker")["image"].startswith(
        "us-west1-docker.pkg.dev/meshburst-test-123/meshburst/worker@sha256:"
    )
    assert container(primary_run, "worker-frontend")["image"].startswith(
        "us-west1-docker.pkg.dev/meshburst-test-123/meshburst/frontend@sha256:"
    )


def test_changing_the_hashr_rate_takes_a_generated_secret_token(primary_run: Run):
    password = primary_run.one("random:index/randomPassword:RandomPassword", "worker-hashr-token")
    assert (password.get("length"), password.get("special")) == (32, False)
    secret = primary_run.one("kubernetes:core/v1:Secret", "worker-hashr-token-secret")
    assert secret.get("metadata") == {"name": "hashr-token", "namespace": "meshburst", "labels": {"app": "frontend"}}
    assert secret.get("stringData") == {"token": FAKE_RANDOM_PASSWORD} and secret.is_secret("stringData")
    assert primary_run.outputs["hashrToken"] == FAKE_RANDOM_PASSWORD
    assert "hashrToken" in primary_run.secret_outputs
    # Mounted as a file (not an environment variable), read-only, and only in the frontend.
    frontend = primary_run.one(DEPLOYMENT, "worker-frontend")
    assert {"name": "secret-hashr-token", "mountPath": "/var/run/secrets/hashr", "readOnly": True} in container(
        primary_run, "worker-frontend"
    )["volumeMounts"]
    assert {"name": "secret-hashr-token", "secret": {"secretName": "hashr-token", "defaultMode": 0o440}} in (
        frontend.get("spec.template.spec.volumes")
    )
    assert secret.urn in primary_run.created_before(frontend)


def test_hashr_max_rps_reaches_the_frontend(primary_run: Run):
    run = run_stack("primary", {"hashrMaxRps": "40"})
    assert env(run, "worker-frontend")["MAX_RPS"] == "40"


def test_worker_probes_check_liveness_and_redis_readiness(primary_run: Run):
    worker = container(primary_run, "worker-worker")
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8081}
    frontend = container(primary_run, "worker-frontend")
    assert frontend["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert frontend["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert worker["ports"] == [{"name": "http", "containerPort": 8081}]


def test_redis_is_the_official_image_without_persistence(primary_run: Run):
    redis = container(primary_run, "worker-redis")
    assert redis["image"] == "redis:7.4.2-alpine"
    assert redis["args"][:3] == ["redis-server", "--save", ""], "no snapshots: the append-only file is enough"
    assert "--appendonly" in redis["args"] and redis["args"][redis["args"].index("--appendonly") + 1] == "yes"
    assert redis["readinessProbe"]["tcpSocket"] == {"port": 6379}
    assert redis["livenessProbe"]["tcpSocket"] == {"port": 6379}
    assert redis["securityContext"]["runAsUser"] == 10001
    assert redis["imagePullPolicy"] == "Always", "a tag can move, so it is pulled every time"
    assert redis["securityContext"]["readOnlyRootFilesystem"] is True
    assert sorted(m["mountPath"] for m in redis["volumeMounts"]) == ["/data", "/tmp"]
    assert redis["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    assert primary_run.one(DEPLOYMENT, "worker-redis").get("spec.replicas") == 1


def test_services_and_ports(primary_run: Run, burst_run: Run):
    def ports(run: Run, resource: str) -> tuple:
        svc = run.one(SERVICE, resource)
        [port] = svc.get("spec.ports")
        return svc.get("metadata.name"), svc.get("spec.selector"), port["name"], port["port"], port["targetPort"]

    assert ports(primary_run, "worker-worker-service") == ("worker-service", {"app": "worker"}, "http", 80, 8081)
    assert ports(primary_run, "worker-frontend-service") == ("frontend-service", {"app": "frontend"}, "http", 80, 8080)
    assert ports(primary_run, "worker-redis-service") == (
        "redis-cache-service",
        {"app": "redis"},
        "tcp-redis",
        6379,
        6379,
    )
    assert ports(burst_run, "worker-worker-service") == ("worker-service", {"app": "worker"}, "http", 80, 8081)
    assert ports(burst_run, "worker-redis-service") == (
        "redis-cache-service",
        {"app": "redis"},
        "tcp-redis",
        6379,
        6379,
    )


def test_every_workload_has_a_pdb_with_exactly_its_selector(primary_run: Run, burst_run: Run):
    # The hardening itself (non-root, read-only, limits, probes...) is the policy pack's, run over every
    # resource of every mode in tests/test_policy.py; this holds the PDB to the Deployment's own selector.
    for run in (primary_run, burst_run):
        pdbs = {r.get("metadata.name"): r for r in run.of_type("kubernetes:policy/v1:PodDisruptionBudget")}
        for deployment in run.of_type(DEPLOYMENT):
            name = deployment.get("metadata.name")
            assert pdbs[name].get("spec.selector.matchLabels") == deployment.get("spec.selector.matchLabels")


def test_frontend_is_reachable_on_its_own_ingress_port(primary_run: Run):
    gateway = primary_run.one("kubernetes:networking.istio.io/v1:Gateway", "worker-gateway")
    assert gateway.get("spec.servers") == [
        {"port": {"number": 8080, "name": "http-8080", "protocol": "HTTP"}, "hosts": ["*"]}
    ]
    route = primary_run.one(VS, "worker-frontend-route")
    assert route.get("spec.gateways") == ["hashr-gateway"]
    assert route.get("spec.http") == [
        {"route": [{"destination": {"host": "frontend-service", "port": {"number": 80}}}]}
    ]
    assert primary_run.outputs["hashrUrl"] == "http://35.3.3.3:8080/"
    assert primary_run.outputs["sharkUrl"] == "http://35.3.3.3/"


def test_redis_is_routed_as_tcp(primary_run: Run):
    route = primary_run.one(VS, "worker-redis-route")
    assert route.get("spec.hosts") == ["redis-cache-service"]
    assert route.get("spec.tcp") == [
        {
            "match": [{"port": 6379}],
            "route": [{"destination": {"host": "redis-cache-service", "port": {"number": 6379}}}],
        }
    ]


def test_burst_runs_prefixed_workers_from_the_primary_image(primary_run: Run, burst_run: Run):
    worker = burst_run.one(DEPLOYMENT, "worker-worker")
    assert worker.get("metadata.labels") == {"app": "worker", "cluster-type": "burst-cluster"}
    assert "replicas" not in worker.get("spec"), "the autoscaler owns the replica count"
    assert env(burst_run, "worker-worker") == {
        "CLUSTER_NAME": "burst",
        "PREFIX": "bursty-",
        "REDIS_URL": "redis-cache-service:6379",
    }
    assert container(burst_run, "worker-worker")["image"] == primary_run.outputs["workerImage"]
    assert burst_run.provider_name(worker) == "burst-k8s"


def test_burst_only_runs_workers(burst_run: Run):
    assert [r.get("metadata.name") for r in burst_run.of_type(DEPLOYMENT)] == ["worker"]
    assert not [r for r in burst_run.of_type(VS) if r.name.startswith("worker")]


def test_burst_workers_autoscale_on_cpu(burst_run: Run):
    hpa = burst_run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "worker-worker-hpa")
    assert hpa.get("spec") == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ],
    }


def test_burst_apps_wait_for_the_remote_mesh(burst_run: Run):
    app = burst_run.one("meshburst:apps:BurstWorkers", "worker")
    assert burst_run.named("istio-apps-namespace").urn in app.dependencies


def policy(run: Run, name: str) -> dict:
    return run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", name).get("spec")


METRICS_RULE = {
    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}],
    "ports": [{"protocol": "TCP", "port": 15020}, {"protocol": "TCP", "port": 15090}],
}


def test_every_workload_has_a_network_policy_admitting_only_its_clients(primary_run: Run, burst_run: Run):
    for run in (primary_run, burst_run):
        selected = {
            json.dumps(p.get("spec.podSelector.matchLabels"), sort_keys=True)
            for p in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        }
        for deployment in run.of_type(DEPLOYMENT):
            assert json.dumps(deployment.get("spec.selector.matchLabels"), sort_keys=True) in selected, deployment.name


def test_primary_worker_admits_only_the_frontend(primary_run: Run):
    assert policy(primary_run, "worker-worker-network-policy") == {
        "podSelector": {"matchLabels": {"app": "worker", "cluster-type": "primary-cluster"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                "ports": [{"protocol": "TCP", "port": 8081}],
            },
            METRICS_RULE,
        ],
    }


def test_burst_worker_admits_the_primary_pod_range_only(burst_run: Run):
    rules = policy(burst_run, "worker-worker-network-policy")["ingress"]
    assert rules[0] == {"from": [{"ipBlock": {"cidr": "10.4.0.0/14"}}], "ports": [{"protocol": "TCP", "port": 8081}]}
    assert rules[1] == METRICS_RULE


def test_redis_admits_workers_frontend_and_the_burst_pod_range(primary_run: Run, burst_run: Run):
    rules = policy(primary_run, "worker-redis-network-policy")["ingress"]
    assert rules[0]["from"] == [
        {"podSelector": {"matchLabels": {"app": "worker"}}},
        {"podSelector": {"matchLabels": {"app": "frontend"}}},
    ]
    assert rules[0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    admit = burst_run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "worker-redis-from-burst")
    assert burst_run.provider_name(admit) == "primary-access", "written into the primary, where Redis runs"
    assert admit.get("spec.ingress") == [
        {"from": [{"ipBlock": {"cidr": "10.8.0.0/14"}}], "ports": [{"protocol": "TCP", "port": 6379}]}
    ]


def test_frontend_and_shark_admit_only_the_ingress_gateway(primary_run: Run):
    for name, port in (("worker-frontend-network-policy", 8080), ("shark-shark-v1-network-policy", 8080)):
        rules = policy(primary_run, name)["ingress"]
        assert rules[0] == {"from": METRICS_RULE["from"], "ports": [{"protocol": "TCP", "port": port}]}


def test_clusters_enforce_network_policies(primary_run: Run, burst_run: Run):
    for run, name in ((primary_run, "primary-cluster"), (burst_run, "burst-cluster")):
        assert run.one("gcp:container/cluster:Cluster", name).get("datapathProvider") == "ADVANCED_DATAPATH"


def test_the_page_reads_the_split_from_the_intent_in_manual_mode_and_the_controller_in_auto(primary_run: Run):
    pod = primary_run.one(DEPLOYMENT, "worker-frontend").get("spec.template.spec")
    assert {"name": "config-worker-split-intent", "mountPath": "/etc/meshburst/split", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"]
    )
    # Optional: the frontend may start before the route's intent exists; kubelet fills the file in later.
    assert {
        "name": "config-worker-split-intent",
        "configMap": {"name": "worker-split-intent", "defaultMode": 0o444, "optional": True},
    } in pod["volumes"]
    auto = run_stack("primary", {"burstMode": "auto"})
    assert env(auto, "worker-frontend")["SPLIT_MODE"] == "auto"
    assert (
        env(auto, "worker-frontend")["SPLIT_STATUS_URL"] == "http://burstwatch.meshburst.svc.cluster.local:8080/status"
    )
    assert "SPLIT_SHARE_FILE" not in env(auto, "worker-frontend")
    service = auto.one("kubernetes:core/v1:Service", "burstwatch-service")
    assert service.get("spec.selector") == {"app": "burstwatch"}
    assert service.get("spec.ports")[0]["port"] == 8080
