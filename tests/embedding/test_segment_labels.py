from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from curata import TorchEmbedder, Vectorizer, describe, majority_labels, patch_labels


def brute_majority(mask: np.ndarray, factor: int, ignore: int | None) -> np.ndarray:
    batch, height, width = mask.shape
    out = np.zeros((batch, height // factor, width // factor), dtype=np.int64)
    for b in range(batch):
        for i in range(height // factor):
            for j in range(width // factor):
                cell = mask[b, i * factor : (i + 1) * factor, j * factor : (j + 1) * factor].reshape(-1)
                voters = cell[cell != ignore] if ignore is not None else cell
                if len(voters) == 0:
                    out[b, i, j] = ignore
                    continue
                values, counts = np.unique(voters, return_counts=True)
                out[b, i, j] = values[np.argmax(counts)]  # np.unique sorts: the smallest label of a tie
    return out


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("ignore", [None, 255])
def test_majority_matches_counting_every_cell(factor, ignore):
    rng = np.random.default_rng(factor)
    mask = rng.choice([0, 1, 2, 7, 255], size=(3, 16, 12), p=[0.3, 0.2, 0.2, 0.1, 0.2])
    mask[0, :factor, :factor] = 255  # a cell of ignored pixels only
    got = majority_labels(torch.from_numpy(mask), (16 // factor, 12 // factor), ignore_label=ignore)
    assert np.array_equal(got.numpy(), brute_majority(mask, factor, ignore))


def test_majority_keeps_an_object_that_nearest_resizing_loses():
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 1:4, :] = 5  # 3 of the 4 pixel rows of the first cell row; nearest resizing to 2x2 reads rows 0 and 4
    nearest = torch.nn.functional.interpolate(mask[:, None].double(), size=(2, 2), mode="nearest")[0, 0]
    assert (nearest == 0).all()
    assert majority_labels(mask, (2, 2))[0].tolist() == [[5, 5], [0, 0]]
    assert majority_labels(mask, (3, 3)).shape == (1, 3, 3)  # not a multiple: nearest


def test_patch_labels_for_vit_tokens():
    mask = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 0], [3, 3, 0, 0], [3, 9, 9, 9]])
    assert patch_labels(mask, 2, prefix_tokens=1).tolist() == [-1, 1, 2, 3, 0]
    assert patch_labels(mask, 2, ignore_label=9).tolist() == [1, 2, 3, 0]
    assert patch_labels(mask.expand(3, 4, 4), 2, prefix_tokens=2).shape == (3, 6)
    with pytest.raises(ValueError, match="not a whole number of 3-pixel patches"):
        patch_labels(mask, 3)
    with pytest.raises(TypeError, match="mask must hold integer labels"):
        patch_labels(mask.float(), 2)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        patch_labels(mask.reshape(-1), 2)
    with pytest.raises(ValueError, match="patch_size must be"):
        patch_labels(mask, 0)


def test_pooled_vectors_one_per_label_present():
    features = torch.rand(2, 3, 4, 4)
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, :4] = 3
    labels[0, 4:, :4] = 255
    labels[1] = 7
    out = Vectorizer("mean", label_mask_key="seg", ignore_label=255)(features, label_mask=labels)
    assert out.sample.tolist() == [0, 0, 1] and out.idx_vector.tolist() == [0, 3, 7] and out.label.tolist() == [0, 3, 7]
    cells = majority_labels(labels, (4, 4)).reshape(2, -1)
    flat = features.flatten(2).transpose(1, 2)
    for row, (sample, label) in enumerate(zip(out.sample.tolist(), out.label.tolist())):
        torch.testing.assert_close(out.vectors[row], flat[sample][cells[sample] == label].mean(dim=0))
    peak = Vectorizer("max", label_mask_key="seg")(features, label_mask=labels)
    assert peak.label.tolist() == [0, 3, 255, 7]  # no ignore_label: 255 is a label like any other
    torch.testing.assert_close(peak.vectors[1], flat[0][cells[0] == 3].amax(dim=0))


def test_per_pixel_vectors_carry_their_labels_and_draws_stay_seeded():
    features = torch.rand(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    out = Vectorizer(label_mask_key="seg", ignore_label=0)(features, label_mask=labels)
    assert len(out.vectors) == int((labels != 0).sum())
    assert torch.equal(out.label, labels.reshape(2, -1)[out.sample, out.idx_vector])
    drawn = Vectorizer(label_mask_key="seg", ignore_label=0, max_vectors=2)(features, label_mask=labels, idx=[5, 6])
    again = Vectorizer(label_mask_key="seg", ignore_label=0, max_vectors=2)(
        features[1:], label_mask=labels[1:], idx=[6]
    )
    assert (drawn.label != 0).all() and torch.equal(drawn.idx_vector[drawn.sample == 1], again.idx_vector)


def test_label_map_errors():
    with pytest.raises(ValueError, match="needs token .* or spatial"):
        Vectorizer("mean", label_mask_key="seg")(torch.rand(2, 3), label_mask=torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="needs the label map 'seg'"):
        Vectorizer("mean", label_mask_key="seg")(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="patch_labels"):
        Vectorizer("mean", label_mask_key="seg")(torch.rand(2, 5, 3), label_mask=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match 2 samples"):
        Vectorizer("mean", label_mask_key="seg")(torch.rand(2, 3, 4, 4), label_mask=torch.zeros(3, 4, 4).long())
    with pytest.raises(TypeError, match="mask must hold integer labels"):
        Vectorizer("mean", label_mask_key="seg")(torch.rand(2, 3, 4, 4), label_mask=torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="ignore_label applies to a label map"):
        Vectorizer(ignore_label=255)
    with pytest.raises(TypeError, match="ignore_label must be an int"):
        Vectorizer(label_mask_key="seg", ignore_label=2.5)


class TinyViT(nn.Module):
    """Patch embedding, a CLS token and one transformer layer: the token layout of a ViT."""

    def __init__(self, patch: int = 4, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patches = nn.Conv2d(1, width, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, width))
        self.block = nn.TransformerEncoderLayer(width, 2, 16, batch_first=True, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        return self.block(torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1))


class Segmented(Dataset):
    """16x16 images with two shapes, each labelled in a segmentation map (0 background, 255 void border)."""

    def __init__(self, count: int = 6) -> None:
        rng = np.random.default_rng(0)
        self.images = torch.from_numpy(rng.random((count, 1, 16, 16), dtype=np.float32))
        self.maps = torch.zeros(count, 16, 16, dtype=torch.long)
        for i in range(count):
            self.maps[i, :8, :8] = 1 + i % 3
            self.maps[i, 8:, 8:] = 4
            self.maps[i, :, 15] = 255

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"data": self.images[i], "seg": patch_labels(self.maps[i], 4, ignore_label=255, prefix_tokens=1)}


def test_describe_gives_one_row_per_label_of_each_image_with_vit_patches(tmp_path):
    model, data = TinyViT(), Segmented()
    vectorizer = Vectorizer("mean", remove=1, label_mask_key="seg", ignore_label=255)
    table = describe(
        data,
        TorchEmbedder(model, ["block"], channel_pos=-1),
        tmp_path / "v",
        vectorizer=vectorizer,
        batch_size=4,
        progress=False,
    )
    idx, labels = table.column("idx"), table.column("label")
    for i in range(len(data)):
        assert sorted(labels[idx == i].tolist()) == sorted({0, 1 + i % 3, 4})
    tokens = model.eval()(data.images).detach()
    row = np.flatnonzero((idx == 2) & (labels == 4))[0]
    patches = patch_labels(data.maps[2], 4, ignore_label=255, prefix_tokens=1)
    expected = tokens[2][patches == 4].mean(dim=0).numpy()
    np.testing.assert_allclose(table.vectors()[row], expected, rtol=1e-5, atol=1e-6)
    assert table.column("idx_vector")[row] == 4
    with pytest.raises(ValueError, match="label_key 'label' and the vectorizer's label_mask_key 'seg'"):
        describe(data, model, tmp_path / "w", vectorizer=vectorizer, label_key="label", progress=False)
    with pytest.raises(KeyError, match="label_mask_key 'mask' is not in the dataset's items"):
        describe(data, model, tmp_path / "x", vectorizer=Vectorizer(label_mask_key="mask"), progress=False)
