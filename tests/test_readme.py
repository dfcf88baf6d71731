from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from launch import TEARDOWN_ABORT, free_port

README = Path(__file__).parent.parent / "README.md"


def test_quickstart_runs_as_written(tmp_path):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    for attempt in range(2):  # the second run exercises the resume path of the same calls
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "rows=100, dim=24" in result.stdout, attempt


def training_examples() -> dict[str, tuple[list[str], str]]:
    """The README's training scripts: name -> (the command in their first line, the code)."""
    examples = {}
    for code in re.findall(r"```python\n(# (train_\w+\.py): (.*?)\n.*?)```", README.read_text(), re.S):
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
