"""Reading numbers from Prometheus's HTTP API, with every way it can fail named (the fault kinds)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import httpx


class PrometheusError(Exception):
    """A failed reading; `kind` names the fault for the faults metric."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def parse_scalar(body: object) -> float:
    """The single value of an instant-vector answer, or PrometheusError."""
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", body) if isinstance(body, dict) else body
        raise PrometheusError("bad_response", f"query failed: {str(error)[:200]}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") != "vector" or not isinstance(result, list):
        raise PrometheusError("bad_response", f"expected a vector, got {data.get('resultType')!r}")
    if not result:
        raise PrometheusError("empty", "no series matched (no traffic yet, or wrong labels)")
    if len(result) > 1:
        raise PrometheusError("bad_response", f"expected one series, got {len(result)} (the query must aggregate)")
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError("bad_response", f"unreadable sample {str(result[0])[:200]}") from exc
    if not math.isfinite(value):
        raise PrometheusError("nan", f"value is {value}")
    return value


async def query_scalar(client: httpx.AsyncClient, base_url: str, query: str) -> float:
    """One instant query; the client's timeout bounds it."""
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


async def read_queries(
    client: httpx.AsyncClient, base_url: str, queries: Mapping[str, str]
) -> tuple[dict[str, float | None], dict[str, PrometheusError]]:
    """Every named query at once: (name -> value, None when it failed), (name -> what failed)."""
    names = list(queries)
    answers = await asyncio.gather(
        *(query_scalar(client, base_url, queries[name]) for name in names), return_exceptions=True
    )
    values: dict[str, float | None] = {}
    errors: dict[str, PrometheusError] = {}
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, PrometheusError):
            values[name], errors[name] = None, answer
        elif isinstance(answer, BaseException):
            raise answer
        else:
            values[name] = answer
    return values, errors
