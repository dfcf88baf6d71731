from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curata import TextFiles, describe


def letter_counts(texts: list[str]) -> torch.Tensor:
    """A tiny text embedder: how often each letter a-z occurs."""
    out = torch.zeros(len(texts), 26)
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                out[row, ord(char) - 97] += 1
    return out


def test_each_format(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n\n  \nbeta\r\ngamma\n")
    with pytest.warns(RuntimeWarning, match="skipped 2 blank texts"):
        plain = TextFiles([tmp_path / "a.txt"])
    assert plain.texts == ["alpha", "beta", "gamma"] and plain.labels is None and plain.skipped == 2
    records = [{"text": "one", "topic": "b"}, {"text": "two", "topic": "a"}, {"text": "three", "topic": "b"}]
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    (tmp_path / "r.csv").write_text('text,topic\nfour,a\n"five, with a comma",c\n')
    pq.write_table(pa.table({"text": ["six", "seven"], "topic": ["c", "a"]}), tmp_path / "r.parquet")
    mixed = TextFiles([tmp_path / f"r.{s}" for s in ("jsonl", "csv", "parquet")], column="text", label_column="topic")
    assert mixed.texts == ["one", "two", "three", "four", "five, with a comma", "six", "seven"]
    assert mixed.classes == ["a", "b", "c"] and mixed.labels == [1, 0, 1, 0, 2, 2, 0]
    by_file = TextFiles([tmp_path / "r.csv", tmp_path / "r.jsonl"], column="text", label_by_file=True)
    assert by_file.labels == [0, 0, 1, 1, 1] and by_file.classes == ["r.csv", "r.jsonl"]
    ints = tmp_path / "i.jsonl"
    ints.write_text('{"text": "x", "y": 7}\n{"text": "z", "y": 3}\n')
    assert TextFiles([ints], column="text", label_column="y").labels == [7, 3]


def test_unreadable_records_name_the_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl' line 2 has no 'text' field; its fields: \['body'\]"):
        TextFiles([tmp_path / "bad.jsonl"], column="text")
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": \n')
    with pytest.raises(ValueError, match="broken.jsonl' line 2 is not JSON"):
        TextFiles([tmp_path / "broken.jsonl"], column="text")
    (tmp_path / "t.csv").write_text("body\nhello\n")
    with pytest.raises(ValueError, match="t.csv' line 2 has no 'text' field"):
        TextFiles([tmp_path / "t.csv"], column="text")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="t.parquet' has no column 'text'"):
        TextFiles([tmp_path / "t.parquet"], column="text")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no texts in"):
        TextFiles([tmp_path / "empty.txt"])
    with pytest.raises(ValueError, match="need column="):
        TextFiles([tmp_path / "t.csv"])
    with pytest.raises(FileNotFoundError, match="missing.txt' does not exist"):
        TextFiles([tmp_path / "missing.txt"])
    (tmp_path / "notes.doc").write_text("hello\n")
    with pytest.raises(ValueError, match="must end in one of"):
        TextFiles([tmp_path / "notes.doc"])
    with pytest.raises(ValueError, match="label_column and label_by_file both label"):
        TextFiles([tmp_path / "t.parquet"], column="body", label_by_file=True, label_column="body")


def test_describe_embeds_texts_with_stable_ids_and_resumes(tmp_path):
    lines = [f"sample number {i} {'abc' * (i % 5)}" for i in range(40)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    texts = TextFiles([tmp_path / "corpus.txt"], label_by_file=True)
    table = describe(texts, letter_counts, tmp_path / "v", batch_size=16, label_key="label", progress=False)
    assert len(table) == 40 and np.array_equal(table.column("idx"), np.arange(40))
    np.testing.assert_array_equal(table.vectors(), letter_counts(lines).numpy())
    again = describe(
        TextFiles([tmp_path / "corpus.txt"], label_by_file=True),
        letter_counts,
        tmp_path / "v",
        batch_size=16,
        label_key="label",
        progress=False,
    )
    assert len(again) == 40  # the same ids: nothing re-embedded or repeated


def fortunes(root):
    """A folder laid out as Debian's fortunes: texts, their binary .dat indexes, .u8 links to the texts."""
    root.mkdir()
    for name, quotes in (("art", ["a painting", "a poem"]), ("law", ["a rule"])):
        (root / name).write_text("\n%\n".join(quotes) + "\n%\n")
        (root / f"{name}.dat").write_bytes(b"\x00\x00\x00\x02\x00" + name.encode())
        (root / f"{name}.u8").symlink_to(root / name)
    (root / ".hidden").write_text("not a fortune\n%\n")
    return root


def test_folders_and_patterns_of_texts_each_file_once_binaries_named(tmp_path):
    root = fortunes(tmp_path / "fortunes")
    with pytest.warns(UserWarning, match=r"skipped 2 binary files \(NUL bytes\): .*art\.dat, .*law\.dat$"):
        folder = TextFiles([root], separator="%", label_by_file=True)
    assert folder.texts == ["a painting", "a poem", "a rule"] and folder.classes == ["art", "law"]
    with pytest.warns(UserWarning, match="skipped 2 binary files"):
        pattern = TextFiles([str(root / "*")], separator="%")  # a pattern the shell left alone
    assert pattern.texts == folder.texts
    both = TextFiles([root / "law", root / "law.u8", root / "art"], separator="%")  # a link to a listed file
    assert both.texts == ["a rule", "a painting", "a poem"]
    (tmp_path / "docs" / "deeper").mkdir(parents=True)
    (tmp_path / "docs" / "b.txt").write_text("second\n")
    (tmp_path / "docs" / "deeper" / "a.txt").write_text("third\n")
    (tmp_path / "docs" / "a.txt").write_text("first\n")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG\x00")
    assert TextFiles([tmp_path / "docs"]).texts == ["first", "second", "third"]  # sorted, subfolders after
    with pytest.raises(ValueError, match=r"every file is binary \(NUL bytes\), none holds text: .*art\.dat"):
        TextFiles([root / "art.dat"], separator="%")
    with pytest.raises(FileNotFoundError, match=r"no file matches '.*\*\.jsonl'"):
        TextFiles([str(tmp_path / "docs" / "*.jsonl")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"folder '.*empty' holds no files ending in \.txt, \.jsonl"):
        TextFiles([tmp_path / "empty"])
