"""components/image_registry.py: images built from apps/ and pushed, or given."""

from __future__ import annotations

from tools.mockrun import Run, run_stack


def test_images_are_built_from_apps_and_pushed(primary_run: Run):
    images = {r.name: r for r in primary_run.of_type("docker-build:index:Image")}
    assert set(images) == {f"images-{n}" for n in ("shark-v1", "shark-v2", "worker", "frontend", "controller")}
    v2 = images["images-shark-v2"]
    assert v2.get("context.location") == "apps/shark"
    # Shared code (apps/lib) is a named context every Dockerfile copies from, not a copy in each app.
    for image in images.values():
        assert image.get("context.named") == {"lib": {"location": "apps/lib"}}
    assert v2.get("dockerfile.location") == "apps/shark/Dockerfile"
    assert v2.get("buildArgs") == {"SHARK_VERSION": "v2"}
    assert v2.get("tags") == ["us-west1-docker.pkg.dev/meshburst-test-123/meshburst/shark-v2:latest"]
    assert v2.get("push") is True and v2.get("buildOnPreview") is False
    assert v2.get("platforms") == ["linux/amd64"]
    repo = primary_run.one("gcp:artifactregistry/repository:Repository", "images-repository")
    assert (repo.get("location"), repo.get("format"), repo.get("repositoryId")) == ("us-west1", "DOCKER", "meshburst")
    assert repo.urn in v2.dependencies


def test_prebuilt_images_build_nothing():
    prebuilt = {n: f"ghcr.io/acme/{n}:1.0" for n in ("shark-v1", "shark-v2", "worker", "frontend", "controller")}
    run = run_stack("primary", {"images": prebuilt})
    assert run.of_type("docker-build:index:Image") == []
    # The (empty) repository stays: the nodes' read grants are scoped to it (see components/image_registry.py).
    assert len(run.of_type("gcp:artifactregistry/repository:Repository")) == 1
    container = run.one("kubernetes:apps/v1:Deployment", "shark-shark-v2").get("spec.template.spec.containers")[0]
    assert container["image"] == "ghcr.io/acme/shark-v2:1.0"
    assert run.outputs["workerImage"] == "ghcr.io/acme/worker:1.0"


def test_an_image_given_by_name_replaces_only_its_build():
    # Promoting v2 to stable on a stack that builds from apps/: v1 takes v2's image, everything else is built.
    v2 = "us-west1-docker.pkg.dev/meshburst-test-123/meshburst/shark-v2@sha256:" + "b" * 64
    run = run_stack("primary", {"images": {"shark-v1": v2}})
    built = sorted(r.name for r in run.of_type("docker-build:index:Image"))
    assert built == ["images-controller", "images-frontend", "images-shark-v2", "images-worker"]
    v1 = run.one("kubernetes:apps/v1:Deployment", "shark-shark-v1").get("spec.template.spec.containers")[0]
    assert v1["image"] == v2
