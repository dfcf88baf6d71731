"""The documentation site builds with warnings as errors, and the Python on its pages runs as written.

Every ```python block of a page under docs/ runs, in page order, in one namespace per page and a fresh working
folder, unless an HTML comment right above it says ``<!-- not run: why -->`` (a multi-node job) or it is a script
run by tests/test_readme.py (its first line ``# name.py: command``). A ``print(...)  # expected`` line checks
what it prints: the comment is the exact text expected, unless it starts with "e.g.".
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import curata

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (?P<why>.+?) -->\s*$")
SCRIPT = re.compile(r"# \w+\.py: ")
EXPECTED = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s+# (?P<expected>.+)$", re.M)


def python_blocks(page: Path) -> list[tuple[str, str | None]]:
    """(code, why it is not run here or None) for each ```python block of ``page``, in order."""
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        code = textwrap.dedent(match["code"])
        skipped = NOT_RUN.search(before)
        why = skipped["why"] if skipped else "a script: tests/test_readme.py runs it" if SCRIPT.match(code) else None
        blocks.append((code, why))
    return blocks


def checked(code: str) -> str:
    """``code`` with each ``print(args)  # expected`` turned into a check of the printed text."""

    def check(match: re.Match[str]) -> str:
        if match["expected"].startswith("e.g."):
            return match[0]
        return f"{match['indent']}__expect__({match['expected']!r}, {match['args']})"

    return EXPECTED.sub(check, code)


def expect(expected: str, *values: object) -> None:
    printed = " ".join(str(value) for value in values)
    print(printed)
    assert printed == expected, f"the page says {expected!r}, the code printed {printed!r}"


PAGES = sorted(page for page in DOCS.rglob("*.md") if any(why is None for _, why in python_blocks(page)))


def test_every_page_with_code_is_run_or_says_why():
    for page in DOCS.rglob("*.md"):
        for _code, why in python_blocks(page):
            assert why is None or why.strip(), page
    assert len(PAGES) >= 10, PAGES  # the getting-started pages, the tutorials and the concepts


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(DOCS).as_posix() for page in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__page__", "__expect__": expect}
    for number, (code, why) in enumerate(python_blocks(page), 1):
        if why is None:
            exec(compile(checked(code), f"{page.relative_to(ROOT)} block {number}", "exec"), namespace)


def test_site_builds_strictly(built_site):
    assert (built_site / "index.html").is_file()
    assert (built_site / "api" / "subsets" / "index.html").is_file()


def test_api_reference_covers_the_public_names():
    pages = "".join(page.read_text() for page in (DOCS / "api").glob("*.md"))
    documented = set(re.findall(r"^::: curata\.(\w+)$", pages, re.M))
    assert set(curata.__all__) <= documented, sorted(set(curata.__all__) - documented)
