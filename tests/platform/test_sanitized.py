"""Under `make sanitize` (CURATA_EXPECT_EXTENSION names the sanitized build): the extension this test run imports is
the sanitized one, not the dev install's, and AddressSanitizer is loaded. Skipped in the ordinary test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curata.clustering import score_scan

EXPECTED = os.environ.get("CURATA_EXPECT_EXTENSION")


@pytest.mark.skipif(not EXPECTED, reason="only under make sanitize")
def test_the_sanitized_extension_is_the_one_imported(capsys):
    assert score_scan._score_scan is not None, "the sanitized build of the extension did not load"
    loaded = Path(score_scan._score_scan.__file__).resolve()
    with capsys.disabled():
        print(f"\nextension under test: {loaded}")
    assert loaded.is_relative_to(Path(EXPECTED).resolve())
    assert b"__asan_report" in loaded.read_bytes()  # built with -fsanitize=address
    maps = Path("/proc/self/maps").read_text()
    assert "libasan" in maps and "libubsan" in maps
