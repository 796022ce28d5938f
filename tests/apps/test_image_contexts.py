"""The apps' build contexts hold what their images copy and nothing else (so images rebuild only on change)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from builders.images import IMAGE_SPECS
from tests.support.paths import ROOT

APPS = ROOT / "apps"
CONTEXTS = sorted({spec.app for spec in IMAGE_SPECS})


def copied_sources(dockerfile: str) -> set[str]:
    """Sources of the Dockerfile's COPY instructions (the last word is the destination)."""
    sources: set[str] = set()
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            sources.update(word.rstrip("/") for word in words[1:-1])
    return sources


def context_files(root: Path) -> set[str]:
    """Files docker sends for this context, by the docker SDK's implementation of .dockerignore rules."""
    patterns = [
        line.strip() for line in (root / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    return {p for p in exclude_paths(str(root), patterns) if (root / p).is_file()}


@pytest.mark.parametrize("app", CONTEXTS)
def test_context_is_exactly_what_the_image_copies(app: str, tmp_path: Path):
    context = tmp_path / app
    shutil.copytree(APPS / app, context, ignore=shutil.ignore_patterns("__pycache__"))
    # What importing the component or running the tests leaves behind on a developer's machine.
    for planted in ("__pycache__/component.cpython-311.pyc", "static/__pycache__/x.pyc", "stray.pyc"):
        (context / planted).parent.mkdir(parents=True, exist_ok=True)
        (context / planted).write_bytes(b"\x00bytecode")

    sent = context_files(context)
    sources = copied_sources((context / "Dockerfile").read_text())
    # docker always sends the Dockerfile and .dockerignore themselves.
    expected = {"Dockerfile", ".dockerignore"} | {
        str(path.relative_to(context))
        for source in sources
        for path in ([context / source] if (context / source).is_file() else (context / source).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert sent == expected
    assert not [p for p in sent if p.endswith(".pyc") or "__pycache__" in p]
    assert "component.py" not in sent and "__init__.py" not in sent


@pytest.mark.parametrize("app", CONTEXTS)
def test_everything_the_dockerfile_copies_exists(app: str):
    for source in copied_sources((APPS / app / "Dockerfile").read_text()):
        assert (APPS / app / source).exists(), f"apps/{app}/Dockerfile copies {source}, which is not there"
