"""The two Kubernetes API calls burstwatch makes: read one VirtualService, patch its two weights."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

FIELD_MANAGER = "burstwatch"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RETRYABLE = {409, 429, 500, 502, 503, 504}
ATTEMPTS = 5


class KubeError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Split:
    """Where the two weights live in the VirtualService, and what they are now."""

    rule: int
    routes: tuple[int, int]
    weights: tuple[int, int]


def read_split(virtual_service: dict, subsets: Sequence[str]) -> Split:
    """Find the HTTP rule that routes to both subsets and read their weights."""
    for rule_index, rule in enumerate(virtual_service.get("spec", {}).get("http", [])):
        routes = rule.get("route", [])
        by_subset = {r.get("destination", {}).get("subset"): i for i, r in enumerate(routes)}
        if all(s in by_subset for s in subsets):
            indices = (by_subset[subsets[0]], by_subset[subsets[1]])
            weights = tuple(int(routes[i].get("weight", 0)) for i in indices)
            return Split(rule_index, indices, weights)  # type: ignore[arg-type]
    name = virtual_service.get("metadata", {}).get("name")
    raise KubeError("not_found", f"VirtualService {name} has no HTTP rule routing to subsets {list(subsets)}")


def weight_patch(split: Split, subsets: Sequence[str], weights: tuple[int, int]) -> list[dict]:
    """A JSON patch that only writes the two weights, and fails if the routes moved since they were read."""
    if len(weights) != 2 or min(weights) < 0 or sum(weights) != 100:
        raise ValueError(f"refusing to write weights {weights}: they must be non-negative and sum to 100")
    base = f"/spec/http/{split.rule}/route"
    tests = [
        {"op": "test", "path": f"{base}/{index}/destination/subset", "value": subset}
        for index, subset in zip(split.routes, subsets, strict=True)
    ]
    writes = [
        {"op": "replace", "path": f"{base}/{index}/weight", "value": weight}
        for index, weight in zip(split.routes, weights, strict=True)
    ]
    return tests + writes


class KubeClient:
    def __init__(self, api_url: str, token_file: Path | None, verify: str | bool, timeout: float = 5.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_file = token_file
        self.http = httpx.AsyncClient(verify=verify, timeout=timeout)

    @classmethod
    def from_env(cls) -> KubeClient:
        """In a pod: the API server and service-account token Kubernetes provides. KUBE_API_URL overrides the
        address (e.g. `kubectl proxy` when running outside a cluster, where the proxy authenticates)."""
        override = os.environ.get("KUBE_API_URL")
        if override:
            return cls(override, None, verify=True)
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise RuntimeError("not in a cluster (no KUBERNETES_SERVICE_HOST) and KUBE_API_URL is not set")
        return cls(f"https://{host}:{port}", SERVICE_ACCOUNT_DIR / "token", verify=str(SERVICE_ACCOUNT_DIR / "ca.crt"))

    def _headers(self) -> dict[str, str]:
        # Re-read every time: projected service-account tokens are rotated by the kubelet.
        return {"authorization": f"Bearer {self.token_file.read_text().strip()}"} if self.token_file else {}

    def _path(self, namespace: str, name: str) -> str:
        return f"{self.api_url}/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}"

    async def _call(
        self,
        method: str,
        url: str,
        on_retry: Callable[[KubeError], None],
        headers: Mapping[str, str] | None = None,
        **kwargs,
    ) -> dict:
        """One API call, retried with doubling backoff on RETRYABLE answers and transport errors.

        `on_retry` is told of each failed attempt that is followed by another one; the error of the last
        attempt is raised instead, so a caller that counts it counts every failed attempt exactly once.
        Every attempt sends the same headers (the token is re-read each time, the content type is kept).
        """
        extra = dict(headers or {})
        delay = 0.2
        for attempt in range(ATTEMPTS):
            try:
                response = await self.http.request(method, url, headers={**self._headers(), **extra}, **kwargs)
            except httpx.HTTPError as exc:
                error = KubeError("kube_unreachable", f"{type(exc).__name__}: {exc}")
            else:
                if response.status_code < 300:
                    return response.json()
                kind = "kube_conflict" if response.status_code == 409 else f"kube_http_{response.status_code}"
                error = KubeError(kind, f"{method} {url} -> HTTP {response.status_code}: {response.text[:200]}")
                if response.status_code not in RETRYABLE:
                    raise error
            if attempt == ATTEMPTS - 1:
                break
            on_retry(error)
            await asyncio.sleep(delay)
            delay *= 2
        raise error

    async def get_virtual_service(
        self, namespace: str, name: str, on_retry: Callable[[KubeError], None] = lambda e: None
    ) -> dict:
        return await self._call("GET", self._path(namespace, name), on_retry)

    async def patch_weights(
        self,
        namespace: str,
        name: str,
        split: Split,
        subsets: Sequence[str],
        weights: tuple[int, int],
        on_retry: Callable[[KubeError], None] = lambda e: None,
    ) -> dict:
        return await self._call(
            "PATCH",
            self._path(namespace, name),
            on_retry,
            params={"fieldManager": FIELD_MANAGER},
            headers={"content-type": "application/json-patch+json"},
            content=json.dumps(weight_patch(split, subsets, weights)),
        )

    async def aclose(self) -> None:
        await self.http.aclose()
