from __future__ import annotations

import sys

import numpy as np
import pytest

from curata import DamagedTableError, VectorTable


def test_from_arrays_roundtrip(tmp_path, rng):
    vectors = rng.random((50, 7), dtype=np.float32)
    labels = rng.integers(0, 4, 50)
    table = VectorTable.from_arrays(tmp_path / "t", vectors, labels=labels)
    again = VectorTable.open(tmp_path / "t")
    assert len(again) == 50 and again.dim == 7 and again.dtype == "float32" and again.has_labels
    assert np.array_equal(again.vectors(), vectors)
    assert np.array_equal(again.column("label"), labels)
    assert np.array_equal(again.sample_ids(), np.arange(50))
    assert np.array_equal(table.vectors([3, 1]), vectors[[3, 1]])
    assert again.columns == ["idx", "idx_vector", "label", "vector"]


def test_multi_vector_ids_get_idx_vector(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((5, 2)), ids=[4, 2, 4, 4, 2])
    assert table.column("idx_vector").tolist() == [0, 0, 1, 2, 1]
    assert table.sample_ids().tolist() == [2, 4]


def test_float16_is_kept(tmp_path, rng):
    vectors = rng.random((10, 4)).astype(np.float16)
    table = VectorTable.from_arrays(tmp_path / "t", vectors)
    assert table.dtype == "float16"
    assert table.vectors().dtype == np.float16
    assert np.array_equal(table.vectors(), vectors)


def test_iter_vectors_streams_exact_batches(tmp_path, rng):
    table = VectorTable.create(tmp_path / "t", dim=3)
    parts = [rng.random((n, 3), dtype=np.float32) for n in (5, 1, 7)]
    for i, part in enumerate(parts):
        table.append(np.arange(len(part)) + 100 * i, np.zeros(len(part)), part)
    batches = list(table.iter_vectors(4))
    assert [len(b) for b in batches] == [4, 4, 4, 1]
    assert np.array_equal(np.concatenate(batches), np.concatenate(parts))


def test_add_column_and_overwrite(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((4, 2)))
    table.add_column("cluster", np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="already exists"):
        table.add_column("cluster", np.zeros(4, dtype=np.int64))
    table.add_column("cluster", np.array([7, 7, 8, 8]), overwrite=True)
    assert VectorTable.open(tmp_path / "t").column("cluster").tolist() == [7, 7, 8, 8]
    table.add_column("center", np.arange(8, dtype=np.float32).reshape(4, 2))
    assert table.column("center").shape == (4, 2)
    assert list(table.to_pandas().columns) == ["idx", "idx_vector", "vector", "cluster", "center"]


def test_interrupted_overwrite_is_repaired_on_open(tmp_path):
    import lance
    import pyarrow as pa

    table = VectorTable.from_arrays(tmp_path / "t", np.ones((3, 2)))
    table.add_column("cluster", np.array([1, 2, 3]))
    # simulate a crash after the new values were staged and the old column dropped
    dataset = lance.dataset(str(tmp_path / "t"))
    staged = pa.record_batch([pa.array([9, 9, 9])], names=["__curata_tmp__cluster"])
    dataset.add_columns(pa.RecordBatchReader.from_batches(staged.schema, [staged]))
    dataset.drop_columns(["cluster"])
    with pytest.warns(RuntimeWarning, match="finished an interrupted overwrite of column 'cluster'"):
        assert VectorTable.open(tmp_path / "t").column("cluster").tolist() == [9, 9, 9]
    # and a crash before the drop rolls back to the old values
    dataset = lance.dataset(str(tmp_path / "t"))
    staged = pa.record_batch([pa.array([5, 5, 5])], names=["__curata_tmp__cluster"])
    dataset.add_columns(pa.RecordBatchReader.from_batches(staged.schema, [staged]))
    with pytest.warns(RuntimeWarning, match="rolled back an interrupted overwrite of column 'cluster'"):
        reopened = VectorTable.open(tmp_path / "t")
    assert reopened.column("cluster").tolist() == [9, 9, 9]
    assert reopened.columns == ["idx", "idx_vector", "vector", "cluster"]


def test_bad_input_errors(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a VectorTable"):
        VectorTable.open(tmp_path / "plain")
    with pytest.raises(FileNotFoundError):
        VectorTable.open(tmp_path / "missing")
    with pytest.raises(ValueError, match="2-D"):
        VectorTable.from_arrays(tmp_path / "a", np.ones(3))
    with pytest.raises(ValueError, match="NaN or inf at rows \\[1\\]"):
        VectorTable.from_arrays(tmp_path / "a", np.array([[0.0], [np.inf]]))
    with pytest.raises(ValueError, match="labels"):
        VectorTable.from_arrays(tmp_path / "a", np.ones((2, 2)), labels=[0.5, 1.5])
    assert not (tmp_path / "a").exists()
    table = VectorTable.from_arrays(tmp_path / "a", np.ones((2, 2)))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        VectorTable.from_arrays(tmp_path / "a", np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape \\(rows, 2\\)"):
        table.append([0], [0], np.ones((1, 3)))
    with pytest.raises(ValueError, match="one entry per row"):
        table.add_column("c", np.ones(5))
    with pytest.raises(ValueError, match="core column"):
        table.add_column("vector", np.ones(2), overwrite=True)
    with pytest.raises(KeyError, match="columns are"):
        table.column("cluster")
    # overwrite=True never deletes something that is not a VectorTable
    with pytest.raises(ValueError, match="not a VectorTable"):
        VectorTable.from_arrays(tmp_path / "plain", np.ones((2, 2)), overwrite=True)
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"
    assert len(VectorTable.open(tmp_path / "a")) == 2


def test_overwrite_replaces_table(tmp_path):
    VectorTable.from_arrays(tmp_path / "a", np.ones((2, 2)))
    table = VectorTable.from_arrays(tmp_path / "a", np.zeros((3, 4)), overwrite=True)
    assert len(table) == 3 and table.dim == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no staging nor lock file left


def _second_data_file(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.random.default_rng(0).random((1000, 16)))
    table.append(np.arange(1000, 1100), np.zeros(100), np.ones((100, 16)))
    name = table._latest().get_fragments()[1].metadata.files[0].path
    return table, tmp_path / "t" / "data" / name


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_damaged_table_names_the_file_and_what_to_do(tmp_path, damage):
    """A missing or truncated data file used to open, then fail inside Lance with ArrowInvalid."""
    table, data_file = _second_data_file(tmp_path)
    size = data_file.stat().st_size
    if damage == "truncate":
        with open(data_file, "r+b") as handle:
            handle.truncate(size // 2)
    else:
        data_file.unlink()
    expected = "holds .* bytes where the table records" if damage == "truncate" else "is missing"
    with pytest.raises(
        DamagedTableError, match=rf"damaged: data file 'data/{data_file.name}' \(fragment 1, 100 rows\) {expected}"
    ):
        table.vectors()  # damaged after it was opened
    with pytest.raises(DamagedTableError, match="Restore that file from a backup, or delete the table"):
        VectorTable.open(tmp_path / "t")


def test_add_column_and_vectors_refuse_values_lance_cannot_take(tmp_path):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((3, 2)))
    for values in (np.ones(3, dtype=complex), np.array([{}, [], 1], dtype=object)):
        with pytest.raises(TypeError, match="values must hold numbers, booleans, strings or datetimes"):
            table.add_column("bad", values)
    with pytest.raises(ValueError, match=r"rows holds row ids outside \[0, 3\): 3 at position 1"):
        table.vectors([0, 3])
    with pytest.raises(TypeError, match="rows must hold integer row ids"):
        table.vectors([0.5])
    assert table.columns == ["idx", "idx_vector", "vector"]


def test_staging_left_by_a_kill_is_removed_on_open_and_said(tmp_path):
    VectorTable.from_arrays(tmp_path / "t", np.ones((3, 2)))
    (tmp_path / ".t.staging-0123456789ab" / "data").mkdir(parents=True)  # a create or overwrite killed mid-write
    with pytest.warns(RuntimeWarning, match=r"removed \.t\.staging-0123456789ab \(left by an interrupted write\)"):
        assert len(VectorTable.open(tmp_path / "t")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    # the fallback's kill between its two renames: no table at the path, the old one retired beside it
    (tmp_path / "t").rename(tmp_path / ".t.retired-0123456789ab")
    with pytest.warns(RuntimeWarning, match="restored .t.retired-0123456789ab to t"):
        assert len(VectorTable.open(tmp_path / "t")) == 3


def test_a_path_through_a_missing_folder_is_refused_before_any_write(tmp_path, monkeypatch):
    """from_arrays on work/sub/../tbl used to stage under work/ and then fail in the rename, leaving it there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    with pytest.raises(ValueError, match=r"climbs \(\.\.\) out of 'work/sub', which does not exist"):
        VectorTable.from_arrays("work/sub/../tbl", np.ones((3, 2)))
    with pytest.raises(ValueError, match="which does not exist"):
        VectorTable.create("work/sub/../tbl", dim=2)
    assert list((tmp_path / "work").iterdir()) == []
    (tmp_path / "work" / "sub").mkdir()
    assert len(VectorTable.from_arrays("work/sub/../tbl", np.ones((3, 2)))) == 3


def test_to_pandas_without_pandas_says_how_to_install_it(tmp_path, monkeypatch):
    table = VectorTable.from_arrays(tmp_path / "t", np.ones((2, 3), np.float32))
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` meets when it is missing
    with pytest.raises(ImportError, match=r"to_pandas\(\) needs pandas: pip install pandas") as caught:
        table.to_pandas()
    assert not isinstance(caught.value, ModuleNotFoundError)  # ours, not the bare one from inside pyarrow
