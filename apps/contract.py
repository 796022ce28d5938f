"""What every app shares with the mesh: the namespace they run in and their ports on the ingress gateway.

The stacks hand these to the Istio components (which create the namespace and open the ports), so the mesh's
modules name no app.
"""

from __future__ import annotations

APPS_NAMESPACE = "meshburst"
"""The apps' namespace in both clusters, created with sidecar injection on."""
# The ingress gateway serves the shark site on 80 and the Hashr frontend on its own port, so neither app's
# routes can shadow the other's.
SHARK_PORT = 80
HASHR_PORT = 8080
INGRESS_PORTS = {"http2": SHARK_PORT, "http-hashr": HASHR_PORT}
"""Ingress gateway port name (its prefix tells Istio the protocol) -> port, for every app served from outside."""
