from __future__ import annotations

import pytest
import torch

from curata import Vectorizer


def test_vectors_pass_through():
    x = torch.rand(4, 6)
    out = Vectorizer()(x)
    assert torch.equal(out.vectors, x)
    assert out.sample.tolist() == [0, 1, 2, 3]
    assert out.idx_vector.tolist() == [0, 0, 0, 0]


def test_maps_give_one_vector_per_pixel_row_major():
    x = torch.rand(2, 3, 2, 4)
    out = Vectorizer()(x)
    assert out.vectors.shape == (16, 3)
    assert out.idx_vector.tolist() == list(range(8)) * 2
    assert torch.equal(out.vectors[5], x[0, :, 1, 1])


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_pooling(pool):
    x = torch.rand(3, 4, 5, 5)
    out = Vectorizer(pool)(x)
    expected = x.mean(dim=(2, 3)) if pool == "mean" else x.amax(dim=(2, 3))
    assert torch.allclose(out.vectors, expected)
    assert out.idx_vector.tolist() == [0, 0, 0]


def test_tokens_keep_cls_and_remove_cls():
    x = torch.rand(2, 5, 8)
    cls = Vectorizer(keep=1)(x)
    assert torch.equal(cls.vectors, x[:, 0])
    patches = Vectorizer(remove=1)(x)
    assert patches.vectors.shape == (8, 8)
    assert patches.idx_vector.tolist() == [1, 2, 3, 4] * 2
    pooled = Vectorizer("mean", remove=1)(x)
    assert torch.allclose(pooled.vectors, x[:, 1:].mean(dim=1))


def test_keep_forms():
    x = torch.rand(1, 6, 2)
    assert Vectorizer(keep=-2)(x).idx_vector.tolist() == [4, 5]
    assert Vectorizer(keep=slice(1, 6, 2))(x).idx_vector.tolist() == [1, 3, 5]
    assert Vectorizer(keep=[0, 5], remove=[5])(x).idx_vector.tolist() == [0]
    with pytest.raises(ValueError, match="out of range"):
        Vectorizer(keep=[7])(x)


def test_max_vectors_is_seeded_per_sample_not_per_batch():
    x = torch.rand(4, 3, 6, 6)
    vectorizer = Vectorizer(max_vectors=5, seed=3)
    whole = vectorizer(x, idx=torch.tensor([10, 11, 12, 13]))
    assert whole.vectors.shape == (20, 3)
    assert all((whole.sample == s).sum() == 5 for s in range(4))
    alone = vectorizer(x[2:3], idx=torch.tensor([12]))
    assert torch.equal(alone.idx_vector, whole.idx_vector[whole.sample == 2])
    other_seed = Vectorizer(max_vectors=5, seed=4)(x, idx=torch.tensor([10, 11, 12, 13]))
    assert not torch.equal(other_seed.idx_vector, whole.idx_vector)


def test_max_vectors_keeps_all_when_fewer():
    out = Vectorizer(max_vectors=50)(torch.rand(2, 3, 4, 4))
    assert out.vectors.shape == (32, 3)


def test_mask_keeps_masked_pixels_and_resizes():
    x = torch.rand(2, 3, 4, 4)
    mask = torch.zeros(2, 8, 8)
    mask[0, :2, :2] = 1  # top-left pixel of the 4x4 map
    mask[1, 4:, 4:] = 1  # bottom-right quadrant: 4 pixels
    out = Vectorizer()(x, mask=mask)
    assert out.sample.tolist() == [0, 1, 1, 1, 1]
    assert out.idx_vector.tolist() == [0, 10, 11, 14, 15]
    pooled = Vectorizer("mean")(x, mask=mask)
    assert torch.allclose(pooled.vectors[1], x[1, :, 2:, 2:].mean(dim=(1, 2)))


def test_empty_mask_gives_no_vector():
    out = Vectorizer("max")(torch.rand(2, 3, 4, 4), mask=torch.zeros(2, 4, 4))
    assert out.vectors.shape == (0, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pool"):
        Vectorizer("median")
    with pytest.raises(ValueError, match="max_vectors"):
        Vectorizer(max_vectors=0)
    with pytest.raises(TypeError, match="keep"):
        Vectorizer(keep="cls")
    with pytest.raises(ValueError, match="mask"):
        Vectorizer(mask_key="m")(torch.rand(1, 2, 3, 3))
    with pytest.raises(ValueError, match="features must be"):
        Vectorizer()(torch.rand(4))


def test_select_keeps_the_vectors_a_selection_method_picks():
    tokens = torch.zeros(16, 8)
    tokens[12:, :4] = 10 * torch.eye(4)  # 12 identical patches, 4 distinct ones
    x = torch.stack([tokens, tokens.flip(0)])  # (2, T, C)
    out = Vectorizer(max_vectors=4, select="kcenter", seed=0)(x, idx=torch.tensor([5, 6]))
    for sample in (0, 1):
        kept = out.vectors[out.sample == sample]
        assert len(kept) == 4 and int((kept.abs().sum(1) > 0).sum()) >= 3  # random keeps about one
    again = Vectorizer(max_vectors=4, select="kcenter", seed=0)(x[1:], idx=torch.tensor([6]))
    assert torch.equal(again.idx_vector, out.idx_vector[out.sample == 1])  # per sample, not per batch
    with pytest.raises(ValueError, match="select needs max_vectors"):
        Vectorizer(select="kcenter")
    with pytest.raises(ValueError, match="select must be None or one of"):
        Vectorizer(max_vectors=2, select="best")
