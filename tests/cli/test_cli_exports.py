"""The commands on a text source: paths beside every command's ids, export's formats, scores, and a damaged record."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import LETTERS

from curata.cli.main import command_line, main

TOPICS = {"food": "bread apple soup", "law": "court judge verdict", "sea": "wave boat harbour"}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "letters.py").write_text(LETTERS)
    lines = []
    for n in range(30):
        topic = list(TOPICS)[n % 3]
        words = TOPICS[topic].split()
        lines.append(json.dumps({"text": f"{words[n % 3]} {words[(n // 3) % 3]} number {n}", "topic": topic}))
    (tmp_path / "notes.jsonl").write_text("\n".join(lines[:12]) + "\n\n" + "\n".join(lines[12:]) + "\n")
    main(["describe", "--texts", "notes.jsonl", "--column", "text", "--label-column", "topic",
          "--model", "letters:make", "--out", "runs/t"])  # fmt: skip
    return tmp_path


def line_of(sample: int) -> int:
    return sample + 1 if sample < 12 else sample + 2  # a blank line after the 12th record


def test_every_command_writes_the_paths_of_its_ids(workdir):
    notes = str((workdir / "notes.jsonl").resolve())
    main(["select", "--vectors", "runs/t/vectors", "--n", "5", "--out", "runs/s"])
    selected = np.load(workdir / "runs" / "s" / "selected_ids.npy")
    assert (workdir / "runs" / "s" / "selected.txt").read_text() == "".join(f"{notes}:{line_of(i)}\n" for i in selected)
    assert "selected.txt" in json.loads((workdir / "runs" / "s" / "summary.json").read_text())["files"]
    main(["split", "--vectors", "runs/t/vectors", "--sizes", "a=0.5", "b=0.5", "--out", "runs/p"])
    for name in ("a", "b"):
        ids = np.load(workdir / "runs" / "p" / f"split_{name}.npy")
        assert (workdir / "runs" / "p" / f"split_{name}.txt").read_text().split() == [
            f"{notes}:{line_of(i)}" for i in ids
        ]

    main(["export", "--vectors", "runs/t/vectors", "--ids", "runs/s/selected_ids.npy", "--to", "picked.jsonl"])
    records = [json.loads(line) for line in (workdir / "picked.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == selected.tolist() and {r["selected_by"] for r in records} == {"select kcenter"}
    texts = [json.loads(line) for line in (workdir / "notes.jsonl").read_text().split("\n") if line]
    assert [(r["text"], r["label"]) for r in records] == [(texts[i]["text"], texts[i]["topic"]) for i in selected]

    # contamination's similarity is each id's score
    main(["contamination", "--vectors", "runs/t/vectors", "--reference", "runs/t/vectors", "--out", "runs/c"])
    main(["export", "--vectors", "runs/t/vectors", "--ids", "runs/c/contaminated_ids.npy", "--to", "near.csv"])
    with open(workdir / "near.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    similarity = np.load(workdir / "runs" / "c" / "similarity.npy")
    assert len(rows) == 30 and np.allclose([float(r["score"]) for r in rows], similarity)
    assert (workdir / "runs" / "c" / "contaminated.txt").read_text().count("\n") == 30

    # copies: a folder per topic, a text file per sample; an existing folder only with --overwrite
    argv = ["export", "--vectors", "runs/t/vectors", "--ids", "runs/s/selected_ids.npy", "--to", "batch"]
    assert command_line([*argv, "--format", "copies"]) == 0
    for i in selected:
        assert (workdir / "batch" / texts[i]["topic"] / f"{i}.txt").read_text() == texts[i]["text"]
    assert command_line([*argv, "--format", "copies"]) == 2
    assert command_line([*argv, "--format", "links"]) == 2  # a text lies inside a file: nothing to link to
    assert command_line([*argv, "--format", "webdataset", "--overwrite"]) == 0
    assert [p.name for p in (workdir / "batch").iterdir()] == ["shard-000000.tar"]


def test_a_damaged_source_record_keeps_the_ids_and_says_so(workdir, capsys):
    (workdir / "runs" / "t" / "vectors" / "source_samples.parquet").unlink()
    with pytest.warns(RuntimeWarning, match="no paths written beside the ids: .*source_samples.parquet is missing"):
        main(["select", "--vectors", "runs/t/vectors", "--n", "5", "--out", "runs/s"])
    assert len(np.load(workdir / "runs" / "s" / "selected_ids.npy")) == 5
    assert not (workdir / "runs" / "s" / "selected.txt").exists()
    capsys.readouterr()
    argv = ["export", "--vectors", "runs/t/vectors", "--ids", "runs/s/selected_ids.npy", "--to", "x.txt"]
    assert command_line(argv) == 2 and "describe the source again" in capsys.readouterr().err
    assert not (workdir / "x.txt").exists()
    np.save(workdir / "bare.npy", np.ones((4, 3), np.float32))
    assert command_line(["export", "--vectors", "bare.npy", "--ids", "runs/s/selected_ids.npy", "--to", "y.txt"]) == 2
    assert "--vectors must be the table describe wrote" in capsys.readouterr().err
