"""The README's quickstarts, the tour of docs/getting-started/tour.md and the training scripts of
docs/tutorials/smart-batches.md, run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from launch import TEARDOWN_ABORT, free_port

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
TOUR = ROOT / "docs" / "getting-started" / "tour.md"
TRAINING = ROOT / "docs" / "tutorials" / "smart-batches.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_quickstart_tour_runs_as_written(tmp_path):
    code = python_blocks(TOUR)[0]
    for attempt in range(2):  # the second run exercises the resume path of the same calls
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "rows=100, dim=24" in result.stdout, attempt


def test_readme_quickstarts_run_as_written(tmp_path, monkeypatch):
    """The image and text quickstarts, on 24 small images in 2 class folders and a file of 8 quotes."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            pixels[..., c] = 255
            Image.fromarray(pixels).resize((24, 24)).save(tmp_path / "photos" / name / f"{i:02d}.png")
    quotes = [
        "The sea is calm.",
        "Bread rises.",
        "Ships sail at dawn.",
        "Soup is warm.",
        "The tide turns.",
        "Salt and pepper.",
        "Waves break.",
        "A pinch of salt.",
    ]
    (tmp_path / "quotes.txt").write_text("\n".join(quotes) + "\n")
    blocks = python_blocks(README)
    assert len(blocks) == 2, "the README holds the image and the text quickstart"
    images, texts = {}, {}
    exec(compile(blocks[0], "README.md images", "exec"), images)
    assert len(images["subset"]) == 12 and len((tmp_path / "curated.txt").read_text().splitlines()) == 12
    exec(compile(blocks[1], "README.md texts", "exec"), texts)
    assert len(texts["table"]) == 8 and len(set(texts["to_label"].tolist())) == 3


def training_examples() -> dict[str, tuple[list[str], str]]:
    """The training scripts: name -> (the command in their first line, the code)."""
    examples = {}
    for code in re.findall(r"```python\n(# (train_\w+\.py): (.*?)\n.*?)```", TRAINING.read_text(), re.S):
        examples[code[1]] = (code[2].split(), code[0])
    return examples


@pytest.mark.parametrize("name", ["train_torchrun.py", "train_lightning.py", "train_accelerate.py"])
def test_training_example_runs_as_written(tmp_path, name):
    pytest.importorskip({"train_lightning.py": "lightning", "train_accelerate.py": "accelerate"}.get(name, "torch"))
    command, code = training_examples()[name]
    (tmp_path / name).write_text(code)
    port = str(free_port())
    launchers = {
        "torchrun": [sys.executable, "-m", "torch.distributed.run", f"--master_port={port}"],
        "python": [sys.executable],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": port}
    result = subprocess.run(
        launchers[command[0]] + command[1:], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 or TEARDOWN_ABORT in result.stderr, result.stderr[-3000:]
    counts = dict(re.findall(r"rank (\d): (\d+) batches per epoch", result.stdout))
    assert counts == {"0": "16", "1": "16"}, result.stdout  # 1,000 samples, 32 a batch, 2 ranks
