"""The demo's steps on a small image folder of digits (the demo itself needs Fashion-MNIST and EfficientNet).

The folder's first file is not an image, so sample ids (ImageFolder positions) are not the table's rows: a step
that confused the two would pick the wrong files and count the wrong labels.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from curata import ImageFolder, describe
from curata.cli.demo import balance_table, recorded_output, run_curation, run_export, run_smart_batches
from curata.subsets.label_shares import label_allocation


@pytest.fixture
def digit_folder(tmp_path):
    digits = load_digits()
    keep = np.concatenate([np.flatnonzero(digits.target == c)[: 60 // (c + 1)] for c in range(5)])
    for i in keep.tolist():
        folder = tmp_path / "digits" / f"digit-{digits.target[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 15).astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    (tmp_path / "digits" / "digit-0" / "0000-broken.png").write_bytes(b"not a png")  # sample 0, unreadable
    images = ImageFolder(tmp_path / "digits", size=8)
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable"):
        table = describe(images, lambda x: x.float().flatten(1), tmp_path / "pool", label_key="label", progress=False)
    assert len(table) == len(images) - 1 and table.column("idx")[0] == 1
    return images, table


def test_the_demos_steps_curate_by_label_batch_and_export_paths(digit_folder, tmp_path, capsys):
    images, table = digit_folder
    sizes = np.bincount(table.column("label"))  # the readable samples
    tree, subsets = run_curation(table, tmp_path, 40, levels=(12, 4), label_names=images.classes, seed=3)
    printed = capsys.readouterr().out
    assert "by label:  classes, then uniformly at random within each class" in printed
    by_label = subsets["by label"]
    assert 0 not in by_label and 0 not in subsets["no labels"]  # the unreadable sample is in no subset
    wanted = label_allocation(sizes, 40).tolist()
    assert np.bincount(np.asarray(images.labels)[by_label], minlength=5).tolist() == wanted
    assert np.array_equal(np.load(tmp_path / "by_label_ids.npy"), by_label)
    assert np.array_equal(np.load(tmp_path / "no_labels_ids.npy"), subsets["no labels"])
    # the table lists the classes largest first, with the three columns' counts
    lines = printed.splitlines()
    first_class = next(line for line in lines if line.startswith("  digit-"))
    assert first_class.split()[:2] == ["digit-0", str(sizes[0])]
    assert first_class.split()[3] == str(label_allocation(sizes, 40)[0])
    sampler = run_smart_batches(table, n_clusters=6, batch_size=8, shown=2, classes=5, seed=3)
    assert sampler.pacing == "proportional" and sampler.seed == 3
    assert sorted(i for batch in sampler for i in batch) == table.column("idx").tolist()  # never sample 0
    assert "mean label TV over the epoch: smart" in capsys.readouterr().out
    listing, records = run_export(table, by_label, tmp_path / "by_label", "demo")
    paths = listing.read_text().splitlines()
    assert paths == [str(images.files[i].resolve()) for i in by_label.tolist()]
    assert records.read_text().splitlines()[0].startswith("id,path,label")
    assert f"exported {len(by_label)} paths" in capsys.readouterr().out


def test_balance_table_and_the_record(tmp_path, capsys):
    from curata.subsets.label_shares import balance

    tree = np.array([0] * 90 + [1] * 10)
    table = balance_table({"picked": balance(tree, [0, 1, 90, 91], labels=np.array([0] * 50 + [1] * 50))})
    assert table.splitlines()[0].split() == ["pool", "picked"] and table.splitlines()[1].split() == [
        "samples",
        "100",
        "4",
    ]
    record = tmp_path / "docs" / "run.txt"
    with recorded_output(record, "curata demo --out x"):
        print("figure 0.123")
    assert capsys.readouterr().out == "figure 0.123\n"
    header, machine, body = record.read_text().splitlines()
    assert header.startswith("# recorded ") and header.endswith("by: curata demo --out x")
    assert "cores" in machine and "torch" in machine and body == "figure 0.123"
    assert not record.with_name("run.txt.partial").exists()
    with pytest.raises(RuntimeError), recorded_output(record, "curata demo --out y"):
        print("half a run")
        raise RuntimeError("stopped")
    assert record.read_text().splitlines()[2] == "figure 0.123"  # the last complete record stays
    assert not record.with_name("run.txt.partial").exists()
