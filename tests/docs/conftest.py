"""The documentation site, built once per session with ``mkdocs build --strict`` (what ``make docs`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site built from mkdocs.yml into a temporary folder; any warning fails the build, and the test."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("the docs extra is missing: pip install -e '.[docs]' (make test installs it)")
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return site
