"""Reading one number from Prometheus's HTTP API, with every way it can fail named."""

from __future__ import annotations

import math

import httpx


class PrometheusError(Exception):
    """A failed reading; `kind` names the fault for the errors metric."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def build_rate_query(reporter: str, destination_service: str, source_workload: str, window: str) -> str:
    """Requests per second from the source workload to the destination service, summed over pods."""
    labels = f'reporter="{reporter}",destination_service="{destination_service}",source_workload="{source_workload}"'
    return f"sum(rate(istio_requests_total{{{labels}}}[{window}]))"


def parse_scalar(body: object) -> float:
    """The single value of an instant-vector answer, or PrometheusError."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", body) if isinstance(body, dict) else body
        raise PrometheusError("bad_response", f"query failed: {error}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") != "vector" or not isinstance(result, list):
        raise PrometheusError("bad_response", f"expected a vector, got {data.get('resultType')!r}")
    if not result:
        raise PrometheusError("empty", "no series matched (no traffic yet, or wrong labels)")
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError("bad_response", f"unreadable sample {result[0]!r}") from exc
    if not math.isfinite(value):
        raise PrometheusError("nan", f"value is {value}")
    return value


async def query_scalar(client: httpx.AsyncClient, base_url: str, query: str) -> float:
    try:
        response = await client.get(f"{base_url.rstrip('/')}/api/v1/query", params={"query": query})
    except httpx.TimeoutException as exc:
        raise PrometheusError("timeout", str(exc) or "no answer in time") from exc
    except httpx.HTTPError as exc:
        raise PrometheusError("unreachable", f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500:
        raise PrometheusError("http_error", f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise PrometheusError("bad_response", f"HTTP {response.status_code}, not JSON") from exc
    return parse_scalar(body)
