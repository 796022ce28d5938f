"""Which images meshburst runs and how each is built from apps/ (one table, used by settings and the build)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ImageSpec:
    name: str
    """Name in the `images` config and in the registry."""
    app: str
    """Folder under apps/ holding the Dockerfile and the code."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    """Docker build arguments that select what the image runs."""
    former_names: tuple[str, ...] = ()
    """Names it had before: its build keeps its identity in Pulumi's state (an alias), not rebuilt as new."""


IMAGE_SPECS: tuple[ImageSpec, ...] = (
    ImageSpec("shark-v1", "shark", {"SHARK_VERSION": "v1"}),
    ImageSpec("shark-v2", "shark", {"SHARK_VERSION": "v2"}),
    ImageSpec("worker", "worker", {"SERVICE": "worker"}),
    ImageSpec("frontend", "worker", {"SERVICE": "frontend"}),
    # One controller image for both policies (canary and burst); it was burstwatch's alone.
    ImageSpec("controller", "controller", former_names=("burstwatch",)),
)
IMAGE_NAMES: tuple[str, ...] = tuple(spec.name for spec in IMAGE_SPECS)
FORMER_IMAGE_NAMES: Mapping[str, str] = MappingProxyType(
    {former: spec.name for spec in IMAGE_SPECS for former in spec.former_names}
)
REPOSITORY_ID = "meshburst"
SHARED_CONTEXTS: Mapping[str, str] = MappingProxyType({"lib": "apps/lib"})
"""Named build contexts every image may copy from (`COPY --from=lib ...`): code the apps share, kept once."""


def registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def image_tag(region: str, project: str, name: str, tag: str = "latest") -> str:
    """Where an image is pushed in the project's Artifact Registry repository."""
    return f"{registry_host(region)}/{project}/{REPOSITORY_ID}/{name}:{tag}"
