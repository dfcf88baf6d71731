"""Old Lance versions are deleted after every write, and ``optimize`` merges small data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curata import VectorTable


def _bytes_on_disk(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def test_rewriting_a_column_twenty_times_costs_less_than_half_a_table(tmp_path):
    """20 rewrites of one float column grew a 20,000 x 64 table from 5.5 MB to 8.8 MB; now it stays 5.5 MB."""
    rng = np.random.default_rng(0)
    table = VectorTable.from_arrays(tmp_path / "t", rng.standard_normal((20_000, 64), dtype=np.float32))
    table.add_column("x", rng.random(20_000))
    one_copy = _bytes_on_disk(table.path)
    # fragments written but not committed yet (a distributed describe's) must survive the deleting of old versions
    written = table.write_fragments(np.arange(3) + 20_000, np.zeros(3), np.ones((3, 64)))
    for _ in range(20):
        table.add_column("x", rng.random(20_000), overwrite=True)
    for number in range(20):
        table.set_attr("note", {"rewrite": number})
    assert _bytes_on_disk(table.path) < 1.5 * one_copy
    assert len(list((table.path / "_versions").glob("*.manifest"))) <= 2
    assert table.commit_fragments(written) == 3
    reopened = VectorTable.open(table.path)
    assert len(reopened) == 20_003 and reopened.get_attr("note") == {"rewrite": 19}
    assert np.array_equal(reopened.vectors(slice(20_000, None)), np.ones((3, 64), dtype=np.float32))


def test_optimize_merges_fragments_and_keeps_every_row_in_order(tmp_path):
    rng = np.random.default_rng(1)
    table = VectorTable.create(tmp_path / "t", dim=8, has_label=True)
    for start in range(0, 300, 10):
        table.append(np.arange(start, start + 10), np.zeros(10), rng.random((10, 8)), labels=rng.integers(0, 3, 10))
    table.add_column("score", rng.random(300))
    table.add_column("label", rng.integers(0, 5, 300), overwrite=True)
    before = {name: table.column(name) for name in table.columns}
    counts = table.optimize()
    assert counts["fragments_removed"] == 30 and counts["fragments_added"] == 1
    reopened = VectorTable.open(table.path)
    assert reopened.columns == list(before)
    for name, values in before.items():
        assert np.array_equal(reopened.column(name), values), name
    assert len(list((table.path / "data").iterdir())) == 1
    assert len(list((table.path / "_versions").glob("*.manifest"))) == 1


def test_optimize_refuses_while_a_distributed_describe_has_uncommitted_fragments(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((4, 2)))
    pending = table.path / "_curata_shards"
    pending.mkdir()
    (pending / "rank0-x.json").write_text("{}")
    with pytest.raises(RuntimeError, match="rerun that describe"):
        table.optimize()
