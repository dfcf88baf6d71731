"""Every link of the README into docs/ names a file that exists, and a page that the built site holds."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\((docs/[^)#\s]+)(#[^)\s]*)?\)")


def docs_links() -> list[str]:
    return [match[1] for match in LINK.finditer((ROOT / "README.md").read_text())]


def test_readme_is_short_and_links_into_the_site():
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
    assert len(docs_links()) >= 10


def test_every_docs_link_names_a_page_of_the_built_site(built_site):
    for link in docs_links():
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"
        relative = Path(link).relative_to("docs")
        if relative.suffix == ".md":  # mkdocs writes page.md as page/index.html (index.md as index.html)
            page = relative.with_suffix("") if relative.stem != "index" else relative.parent
            built = built_site / page / "index.html"
        else:
            built = built_site / relative
        assert built.is_file(), f"README links {link}, which the built site lacks ({built})"
