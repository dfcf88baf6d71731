"""The README's demo figures are those the demo printed on its recorded run (``make demo-record`` writes it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "docs" / "demo" / "fashion-mnist.txt"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


def demo_section(readme: str) -> str:
    """The README's text from '## The demo' to the next section."""
    start = readme.index("## The demo")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else len(readme)]


def figures(text: str) -> list[str]:
    """The numbers written in ``text`` (thousands separators dropped): 14,904 -> 14904."""
    return [n.replace(",", "") for n in NUMBER.findall(text)]


def test_figures_finds_what_a_reader_reads():
    assert figures("from 14,904 images, KL 0.658 -> 0.222 (class c keeps 6000 * 0.6^c), [500, 50]") == [
        "14904", "0.658", "0.222", "6000", "0.6", "500", "50",
    ]  # fmt: skip


def test_the_readmes_demo_figures_are_printed_by_its_recorded_run():
    record = RECORD.read_text()
    printed = set(figures(record))
    section = demo_section((ROOT / "README.md").read_text())
    assert "docs/demo/fashion-mnist.txt" in section, "the README names the recorded run it quotes"
    for block in FENCE.findall(section):
        for line in block.splitlines():
            assert line in record.splitlines(), f"the README quotes {line!r}, which the recorded run did not print"
    prose = FENCE.sub("", section)
    missing = [n for n in figures(prose) if n not in printed]
    assert not missing, f"figures in the README's demo section that its recorded run did not print: {missing}"
