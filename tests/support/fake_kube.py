"""A Kubernetes API server stand-in on loopback, speaking exactly the calls the controller makes through lightkube.

    kube = FakeKube(token="t0ken")                     # a ThreadingHTTPServer on 127.0.0.1
    kube.set_object(virtual_service_manifest(spec))    # as Pulumi would write it: resourceVersion bumped
    env = {"KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", kube))}
    ...
    kube.get("VirtualService", "apps", "shark")        # the stored object (a copy), or None
    kube.writes()                                      # recorded PATCH requests, oldest first

Objects live in a dict keyed by their API path; the kinds served are VirtualService (networking.istio.io/v1),
ConfigMap (v1) and Deployment (apps/v1). Calls:
  GET                                            the object, or a 404 Status
  PATCH application/apply-patch+yaml             server-side apply: `fieldManager` required; a metadata.
                                                 resourceVersion in the body must equal the stored one (else
                                                 409); maps merge, lists and scalars are replaced; creates the
                                                 object when absent (without a resourceVersion)
  PATCH application/merge-patch+json             RFC 7386 merge patch (null deletes); 404 when absent
Every write bumps the object's resourceVersion. Every request is recorded (method, path, query, content type,
body, bearer token). Failures on cue: `fail(status, method=..., path_part=..., times=...)`; a slow answer:
`delay(seconds, ...)`; `before_write(callback)` runs just before a PATCH is applied (a test acting as Pulumi
writing between the controller's GET and its apply).
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.support.loopback import LoopbackServer

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
KINDS = {
    "VirtualService": ("/apis/networking.istio.io/v1", "virtualservices"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Deployment": ("/apis/apps/v1", "deployments"),
}
API_VERSIONS = {"VirtualService": "networking.istio.io/v1", "ConfigMap": "v1", "Deployment": "apps/v1"}


def object_path(kind: str, namespace: str, name: str) -> str:
    prefix, plural = KINDS[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}/{name}"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_merge(target: Any, applied: Any) -> Any:
    """Server-side apply, simplified for one forcing manager: maps merge, lists (atomic here) and scalars replace."""
    if isinstance(target, dict) and isinstance(applied, dict):
        result = dict(target)
        for key, value in applied.items():
            result[key] = apply_merge(result.get(key), value)
        return result
    return copy.deepcopy(applied)


@dataclass
class Recorded:
    at: float
    """time.monotonic() when the request arrived."""
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    token: str | None
    status: int = 0
    """What the fake answered."""


@dataclass
class Failure:
    status: int
    method: str | None
    path_part: str | None
    times: int
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path_part is None or self.path_part in path)


@dataclass
class FakeKube(LoopbackServer):
    token: str = "fake-token"
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.version = 100
        self.failures: list[Failure] = []
        self.hooks: list[Callable[[Recorded], None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                content_type = self.headers.get("content-type", "").split(";")[0].strip()
                auth = self.headers.get("authorization", "")
                body: Any = None
                if raw:
                    try:
                        body = yaml.safe_load(raw) if content_type == APPLY else json.loads(raw)
                    except (ValueError, yaml.YAMLError):
                        body = raw.decode(errors="replace")
                record = Recorded(
                    time.monotonic(),
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    content_type,
                    body,
                    auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None,
                )
                status, answer, delay = api.answer(record)
                record.status = status
                if delay:
                    time.sleep(delay)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(status, answer)

            do_GET = _handle
            do_PATCH = _handle
            do_POST = _handle
            do_PUT = _handle
            do_DELETE = _handle

            def log_message(self, *_args: object) -> None:
                return

        self.serve(Handler)
        self.url = f"http://{self.address}"

    # -- what tests call -------------------------------------------------------------------------------------

    def set_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as another writer (Pulumi) would: replaced whole, resourceVersion bumped."""
        kind, metadata = obj["kind"], obj["metadata"]
        stored = copy.deepcopy(obj)
        stored.setdefault("apiVersion", API_VERSIONS[kind])
        with self.lock:
            path = object_path(kind, metadata["namespace"], metadata["name"])
            stored["metadata"]["resourceVersion"] = self._next_version()
            if kind == "Deployment":
                previous = self.objects.get(path)
                generation = (previous or {}).get("metadata", {}).get("generation", 0)
                stored["metadata"].setdefault("generation", generation + 1)
            self.objects[path] = stored
            return copy.deepcopy(stored)

    def delete_object(self, kind: str, namespace: str, name: str) -> None:
        with self.lock:
            self.objects.pop(object_path(kind, namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get(object_path(kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def fail(
        self, status: int, method: str | None = None, path_part: str | None = None, times: int = 1, delay: float = 0.0
    ) -> None:
        """Answer the next `times` matching requests with `status` (a Status body), after `delay` seconds."""
        with self.lock:
            self.failures.append(Failure(status, method, path_part, times, delay))

    def delay(self, seconds: float, method: str | None = None, path_part: str | None = None, times: int = 1) -> None:
        """Serve the next `times` matching requests normally, but only after `seconds`."""
        self.fail(0, method, path_part, times, seconds)

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def before_write(self, callback: Callable[[Recorded], None]) -> None:
        """Call `callback(request)` just before each PATCH is applied (from the server thread; it may set_object)."""
        with self.lock:
            self.hooks.append(callback)

    def recorded(
        self, method: str | None = None, path_part: str | None = None, content_type: str | None = None
    ) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path_part is None or path_part in r.path)
                and (content_type is None or r.content_type == content_type)
            ]

    def writes(self, path_part: str | None = None) -> list[Recorded]:
        return self.recorded("PATCH", path_part)

    def applies(self, path_part: str = "/virtualservices/") -> list[Recorded]:
        """Server-side applies to VirtualServices that were answered 2xx (the writes that happened)."""
        return [r for r in self.recorded("PATCH", path_part, APPLY) if 200 <= r.status < 300]

    # -- the server side -------------------------------------------------------------------------------------

    def _next_version(self) -> str:
        self.version += 1
        return str(self.version)

    @staticmethod
    def _status(code: int, reason: str, message: str) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }

    def answer(self, record: Recorded) -> tuple[int, dict[str, Any], float]:
        with self.lock:
            self.requests.append(record)
            delay = 0.0
            for failure in self.failures:
                if failure.times > 0 and failure.matches(record.method, record.path):
                    failure.times -= 1
                    delay = failure.delay
                    if failure.status:
                        self.failures = [f for f in self.failures if f.times > 0]
                        return failure.status, self._status(failure.status, "Injected", "injected failure"), delay
                    break
            self.failures = [f for f in self.failures if f.times > 0]
            if record.token != self.token:
                return 401, self._status(401, "Unauthorized", "Unauthorized"), delay
            hooks = list(self.hooks) if record.method == "PATCH" else []
        for hook in hooks:  # outside the lock's first hold: a hook may call set_object (the lock is reentrant)
            hook(record)
        with self.lock:
            status, body = self._serve_object(record)
            return status, body, delay

    def _serve_object(self, record: Recorded) -> tuple[int, dict[str, Any]]:
        kind = next(
            (
                k
                for k, (prefix, plural) in KINDS.items()
                if record.path.startswith(prefix + "/") and f"/{plural}/" in record.path
            ),
            None,
        )
        if kind is None:
            return 404, self._status(404, "NotFound", f"the server could not find {record.path}")
        stored = self.objects.get(record.path)
        name = record.path.rsplit("/", 1)[-1]
        if record.method == "GET":
            if stored is None:
                return 404, self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            return 200, copy.deepcopy(stored)
        if record.method != "PATCH":
            return 405, self._status(405, "MethodNotAllowed", f"{record.method} is not served here")
        if not isinstance(record.body, dict):
            return 400, self._status(400, "BadRequest", "the patch body is not an object")
        wanted = (record.body.get("metadata") or {}).get("resourceVersion")
        if record.content_type == APPLY:
            if not record.query.get("fieldManager"):
                return 400, self._status(
                    400, "BadRequest", "PatchOptions.meta.k8s.io: fieldManager is required for apply"
                )
            if wanted is not None and (stored is None or stored["metadata"]["resourceVersion"] != wanted):
                return 409, self._status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {kind.lower()}s "{name}": '
                    "the object has been modified; please apply your changes to the latest version",
                )
            updated = copy.deepcopy(record.body) if stored is None else apply_merge(stored, record.body)
        elif record.content_type == MERGE:
            if stored is None:
                return 404, self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
            if wanted is not None and stored["metadata"]["resourceVersion"] != wanted:
                return 409, self._status(409, "Conflict", "the object has been modified")
            updated = merge_patch(stored, record.body)
        else:
            return 415, self._status(415, "UnsupportedMediaType", f"{record.content_type} is not served here")
        updated["metadata"]["resourceVersion"] = self._next_version()
        self.objects[record.path] = updated
        return 200, copy.deepcopy(updated)


def write_kubeconfig(path: Path, kube: FakeKube, namespace: str = "default") -> Path:
    """A kubeconfig pointing at the fake (plain http, a bearer token): what KUBECONFIG names for the controller."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
        "users": [{"name": "controller", "user": {"token": kube.token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "controller", "namespace": namespace}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config))
    return path
