"""IstioRemote: a remote cluster of the primary's control plane (no istiod of its own)."""

from __future__ import annotations

from typing import TypedDict

import pulumi

from builders.istio import base_values, istiod_remote_values
from resources.istio_install import install_istio_core


class IstioRemoteArgs(TypedDict):
    version: pulumi.Input[str]
    """Istio chart version; must match the primary's."""
    cluster: str
    """Istio cluster name of this remote (multiCluster.clusterName)."""
    control_plane_cluster: str
    """Istio cluster name of the primary that runs istiod."""
    mesh_id: str
    """Mesh ID shared with the primary."""
    network: str
    """Istio network name shared with the primary."""
    remote_pilot_address: pulumi.Input[str]
    """The primary's east-west gateway address, where istiod is reached."""
    apps_namespace: str
    """The apps' namespace, created with sidecar injection on."""


class IstioRemote(pulumi.ComponentResource):
    apps_namespace: str
    """Namespace of the apps, sidecar injection on."""
    istiod: pulumi.Resource
    """The remote `istiod` release: the injection webhook and the reader's RBAC that istiod in the primary uses."""
    ready: list[pulumi.Resource]
    """What apps wait for: their namespace, which exists once the injection webhook does."""

    def __init__(self, name: str, args: IstioRemoteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:istio:IstioRemote", name, None, opts)
        core = install_istio_core(
            self,
            name,
            args["version"],
            args["network"],
            base_values(remote=True),
            istiod_remote_values(args["cluster"], args["mesh_id"], args["network"], args["remote_pilot_address"]),
            args["apps_namespace"],
            system_annotations={"topology.istio.io/controlPlaneClusters": args["control_plane_cluster"]},
        )
        self.istiod = core.istiod
        self.apps_namespace = args["apps_namespace"]
        self.ready = [core.apps_namespace]
        self.register_outputs({"appsNamespace": self.apps_namespace, "istiod": self.istiod, "ready": self.ready})
