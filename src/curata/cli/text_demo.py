"""The text demo: the quotes of Debian's ``fortunes`` package, labelled by file, described with MiniLM.

Run it with ``curata demo --text`` (needs ``apt-get install fortunes`` and ``pip install 'curata[text]'``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from curata.cli.demo import BY_LABEL, run_curation, run_export, run_smart_batches
from curata.embedding.job import describe
from curata.exploring.explorer import explore
from curata.exploring.report import report
from curata.models.presets import load_model
from curata.sources.texts import TextFiles

__all__ = ["FORTUNES_DIR", "fortune_files", "run_text_demo"]

FORTUNES_DIR = Path("/usr/share/games/fortunes")


def fortune_files(root: Path = FORTUNES_DIR) -> list[Path]:
    """The fortune files (one topic each; their .dat/.u8 indexes and the offensive subfolder left out)."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"{str(root)!r} is missing: install Debian's fortunes package (apt-get install fortunes)"
        )
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8") and not p.is_symlink())


def run_text_demo(out: Path, target: int = 3000, root: Path = FORTUNES_DIR, seed: int = 0) -> None:
    """describe (minilm) -> hierarchical k-means -> curate (without, with labels) -> smart batches -> export -> report,
    on the fortunes."""
    texts = TextFiles(fortune_files(root), separator="%", label_by_file=True)
    topics = len(texts.classes)
    sizes = np.bincount(np.asarray(texts.labels), minlength=topics)
    print(f"{len(texts)} fortunes in {topics} topic files, from {sizes.min()} to {sizes.max()} per topic")
    start = time.perf_counter()
    table = describe(texts, load_model("minilm").embedder(), out / "pool", label_key="label", batch_size=128)
    seconds = time.perf_counter() - start
    print(f"stored {len(table)} vectors of dimension {table.dim} at {table.path} ({seconds:.1f} s)")
    size = min(target, len(table) // 2)
    tree, subsets = run_curation(table, out, size, levels=(300, 30), label_names=texts.classes, seed=seed)
    sampler = run_smart_batches(table, classes=topics, seed=seed)
    run_export(table, subsets["by label"], out / "by_label", BY_LABEL)
    index = report(table, out / "report", tree=tree, curated=subsets["by label"], sampler=sampler)
    print(f"report: {index}")
    page = explore(table, out / "explorer", source=texts, tree=tree, curated=subsets["by label"], sampler=sampler)
    print(f"explorer: {page}")
