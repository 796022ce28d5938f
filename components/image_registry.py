"""ImageRegistry: the apps' images, either built from apps/ and pushed to Artifact Registry, or given.

The repository exists in both cases (empty when images are given; Artifact Registry bills stored bytes
only), so each cluster's nodes are granted read on this one repository rather than on every repository
of the project, whatever the primary stack's `images` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NotRequired, TypedDict

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from builders.images import IMAGE_SPECS, REPOSITORY_ID, SHARED_CONTEXTS, ImageSpec, image_tag


def repository_path(project: str, region: str) -> str:
    """The repository's full name, as IAM bindings on it name it."""
    return f"projects/{project}/locations/{region}/repositories/{REPOSITORY_ID}"


# Relative to the project directory (where `pulumi` runs), so previews from any clone show the same inputs.
APPS_DIR = Path("apps")


class ImageRegistryArgs(TypedDict):
    project: str
    """GCP project of the repository."""
    region: str
    """Region of the repository (the clusters' region)."""
    prebuilt: NotRequired[Mapping[str, str] | None]
    """Image references by name to use instead of building those images; the others are built."""
    kms_key: NotRequired[str | None]
    """Cloud KMS key (full id) to encrypt the repository with; it cannot change once the repository exists."""


class ImageRegistry(pulumi.ComponentResource):
    refs: dict[str, pulumi.Output[str]]
    """Image name -> pullable reference (digest-pinned when built here)."""
    repository: pulumi.Output[str]
    """The repository's full name (projects/P/locations/L/repositories/R), known once it exists."""

    def __init__(self, name: str, args: ImageRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meshburst:images:ImageRegistry", name, None, opts)
        prebuilt = args.get("prebuilt")
        project, region = args["project"], args["region"]
        repository = gcp.artifactregistry.Repository(
            f"{name}-repository",
            project=project,
            location=region,
            repository_id=REPOSITORY_ID,
            format="DOCKER",
            description="meshburst app images",
            kms_key_name=args.get("kms_key"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Built from the repository's own outputs, so whoever reads it waits until it exists.
        self.repository = repository.repository_id.apply(lambda _: repository_path(project, region))
        given = prebuilt or {}
        # An image named in `images` is used as given (a release, or v2 promoted to v1); the others are built.
        self.refs = {
            spec.name: pulumi.Output.from_input(given[spec.name]) for spec in IMAGE_SPECS if spec.name in given
        }
        self.refs |= self._build(name, project, region, repository, [s for s in IMAGE_SPECS if s.name not in given])
        self.refs = {spec.name: self.refs[spec.name] for spec in IMAGE_SPECS}
        self.register_outputs({"refs": self.refs, "repository": self.repository})

    def _build(
        self,
        name: str,
        project: str,
        region: str,
        repository: gcp.artifactregistry.Repository,
        specs: Sequence[ImageSpec],
    ) -> dict[str, pulumi.Output[str]]:
        refs: dict[str, pulumi.Output[str]] = {}
        for spec in specs:
            context = APPS_DIR / spec.app
            image = docker_build.Image(
                f"{name}-{spec.name}",
                context=docker_build.BuildContextArgs(
                    location=context.as_posix(),
                    named={name: docker_build.ContextArgs(location=path) for name, path in SHARED_CONTEXTS.items()},
                ),
                dockerfile=docker_build.DockerfileArgs(location=(context / "Dockerfile").as_posix()),
                build_args=dict(spec.build_args),
                # GKE nodes are amd64: explicit, so a build on an arm laptop still runs there.
                platforms=[docker_build.Platform.LINUX_AMD64],
                tags=[image_tag(region, project, spec.name)],
                push=True,
                # Previews (e.g. on pull requests) skip the build; the digest shows as known after apply.
                build_on_preview=False,
                # Pushing uses the host's Docker credentials: `gcloud auth configure-docker <region>-docker.pkg.dev`.
                # A new repository (e.g. a new kmsKey, which cannot change in place) starts empty: push again.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[repository],
                    replace_with=[repository],
                    aliases=[pulumi.Alias(name=f"{name}-{former}") for former in spec.former_names],
                ),
            )
            # The digest pins what runs: a new build changes the Deployment, an unchanged one does not.
            refs[spec.name] = image.ref
        return refs
