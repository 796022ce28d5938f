"""The Kubernetes API calls the controller makes, on lightkube, with every failure named by a fault kind.

Five calls, each on one named object (the controller's Role allows nothing else): get the VirtualService,
apply it (server-side apply as `meshburst-controller`, force, with the resourceVersion that was read, so a
write by anyone else since then is a 409 instead of being overwritten), get a ConfigMap, merge-patch a
ConfigMap's `data`, get a Deployment. Objects come back as plain JSON data.

Configuration: `KubeConfig.from_env()`, i.e. the pod's service account in a cluster, else the file KUBECONFIG
names (the tests point it at a fake API server on loopback: the same code path as in the cluster).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import httpx2
import msgspec
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

FIELD_MANAGER = "meshburst-controller"
VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")

STATUS_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
    429: "throttled",
}
"""HTTP status of a refused call -> fault kind; other 4xx are `rejected`, every 5xx `server_error`."""


class KubeError(Exception):
    """A failed call; `kind` names the fault for the faults metric."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def fault_kind(status: int) -> str:
    if status >= 500:
        return "server_error"
    return STATUS_KINDS.get(status, "rejected")


def _as_kube_error(what: str, error: Exception) -> KubeError:
    if isinstance(error, httpx2.HTTPStatusError):  # ApiError too: lightkube's answer with a Status body
        status = error.response.status_code
        message = error.status.message if isinstance(error, ApiError) and error.status else ""
        return KubeError(fault_kind(status), f"{what} -> HTTP {status} {message or ''}".rstrip()[:300])
    if isinstance(error, httpx2.TimeoutException):
        return KubeError("timeout", f"{what}: no answer in time ({type(error).__name__})")
    if isinstance(error, httpx2.HTTPError):
        return KubeError("unreachable", f"{what}: {type(error).__name__}: {error}"[:300])
    if isinstance(error, msgspec.MsgspecError | ValueError):
        return KubeError("bad_response", f"{what}: unreadable answer: {error}"[:300])
    raise error


def _plain(obj: Any) -> dict[str, Any]:
    """A lightkube object (model or generic dict) as plain JSON data."""
    return msgspec.json.decode(msgspec.json.encode(obj))  # type: ignore[no-any-return]


class Kube:
    """The controller's calls in one namespace; every call is bounded by the client's timeout."""

    def __init__(self, client: AsyncClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    @classmethod
    def from_env(cls, namespace: str, timeout_s: float = 5.0) -> Kube:
        """In a pod: its service account. Elsewhere: the kubeconfig KUBECONFIG names. ConfigError when neither."""
        config = KubeConfig.from_env()
        client = AsyncClient(
            config,
            namespace=namespace,
            timeout=httpx2.Timeout(timeout_s),
            field_manager=FIELD_MANAGER,
            trust_env=False,  # no proxy variables: the API server is reached directly
        )
        return cls(client, namespace)

    async def _get(self, resource: Any, name: str) -> dict[str, Any] | None:
        what = f"GET {resource.__name__} {self.namespace}/{name}"
        try:
            return _plain(await self.client.get(resource, name, namespace=self.namespace))
        except Exception as error:
            mapped = _as_kube_error(what, error)
            if mapped.kind == "not_found":
                return None
            raise mapped from error

    async def get_virtual_service(self, name: str) -> dict[str, Any] | None:
        """The live VirtualService, None when there is none."""
        return await self._get(VirtualService, name)

    async def apply_virtual_service(self, manifest: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        """Server-side apply of the whole rendered VirtualService, forced (it takes fields over from Pulumi's
        manager) but only onto the version that was read: a write by anyone since then gives `conflict`.
        With no version (nothing was live) the apply creates the object."""
        body = copy.deepcopy(dict(manifest))
        if resource_version is not None:
            body["metadata"]["resourceVersion"] = resource_version
        name = body["metadata"]["name"]
        try:
            written = await self.client.apply(  # type: ignore[call-overload]
                VirtualService(body),  # type: ignore[call-overload]
                field_manager=FIELD_MANAGER,
                force=True,
                namespace=self.namespace,
            )
        except Exception as error:
            raise _as_kube_error(f"apply VirtualService {self.namespace}/{name}", error) from error
        return _plain(written)

    async def get_config_map(self, name: str) -> dict[str, Any] | None:
        return await self._get(ConfigMap, name)

    async def patch_config_map_data(self, name: str, data: Mapping[str, str]) -> None:
        """Merge-patch only `data` (keys given are set, others kept): the object's metadata is Pulumi's."""
        try:
            await self.client.patch(
                ConfigMap, name, {"data": dict(data)}, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        except Exception as error:
            raise _as_kube_error(f"patch ConfigMap {self.namespace}/{name}", error) from error

    async def get_deployment(self, name: str) -> dict[str, Any] | None:
        return await self._get(Deployment, name)

    async def aclose(self) -> None:
        await self.client.aclose()


__all__ = ["FIELD_MANAGER", "ConfigError", "Kube", "KubeError", "VirtualService", "fault_kind"]
