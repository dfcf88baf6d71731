"""Study 6: the coreset split on text. Goldener's text recipe (80 % train per class) on Debian's fortunes.

The quotes of every fortune file with at least 400 of them (16 topics) are described with the ``minilm`` preset
(cached in runs/evidence/fortunes). Pools: the first 100 and the first 200 quotes of each topic; test: quotes 200-399
of each topic (3,200). Each pool is split 80 % / 20 % inside every topic at random, by greedy k-center
(Goldener's recipe) and by kernel herding; the same linear probe is trained on each training part and evaluated
on the test quotes. 10 seeds, paired as in study 5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import RUNS, Vectors, save_json
from coreset_split import SEEDS, compare, markdown, plot, reading

from curata import TextFiles, describe
from curata.cli.text_demo import fortune_files
from curata.models import load_model

__all__ = ["run", "markdown", "reading"]

NAME = "coreset_split_text"
HYPOTHESIS = (
    "On text (fortune topics, MiniLM vectors), a probe trained on the 80 % chosen by a coreset split reaches a "
    "higher test accuracy than one trained on a random 80 % per topic. Null: no paired difference across seeds."
)
PER_TOPIC = (100, 200)
MIN_QUOTES = 400


def fortune_vectors() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(vectors, topic of each, topic names) of the quotes of every fortune file with >= MIN_QUOTES quotes."""
    texts = TextFiles(fortune_files(), separator="%", label_by_file=True)
    table = describe(texts, load_model("minilm").embedder(), RUNS / "fortunes", label_key="label", progress=False)
    order = np.argsort(table.column("idx"))
    return table.vectors()[order], table.column("label")[order], list(texts.classes)


def run(_: Vectors | None = None) -> dict[str, Any]:
    vectors, topics, names = fortune_vectors()
    counts = np.bincount(topics)
    kept = [t for t in range(len(counts)) if counts[t] >= MIN_QUOTES]
    renumber = {t: k for k, t in enumerate(kept)}
    members = {t: np.flatnonzero(topics == t) for t in kept}  # quotes in file order
    pools = []
    for per_topic in PER_TOPIC:
        rows = np.concatenate([members[t][:per_topic] for t in kept])
        pools.append((vectors[rows], np.array([renumber[t] for t in topics[rows]])))
    test_rows = np.concatenate([members[t][200:400] for t in kept])
    test = (vectors[test_rows], np.array([renumber[t] for t in topics[test_rows]]))
    rows_out = compare(pools, test, 0.8, len(kept), "coreset split (text)")
    result = {
        "hypothesis": HYPOTHESIS,
        "topics": [names[t] for t in kept],
        "pools": [p * len(kept) for p in PER_TOPIC],
        "seeds": SEEDS,
        "rows": rows_out,
    }
    save_json(NAME, result)
    plot(result, NAME, f"Coreset split vs random split on text, 80/20 per topic ({len(kept)} fortune topics)")
    return result
