from __future__ import annotations

import pytest
import torch
from torch import nn

from curata import TorchEmbedder
from curata.embedding.embed import fuse, model_digest


def test_default_is_model_output(cnn):
    x = torch.rand(3, 1, 8, 8)
    out = TorchEmbedder(cnn)(x)
    assert torch.allclose(out, cnn(x))


@pytest.mark.parametrize(("fusion", "channels"), [("concat", 8), ("mean", 4), ("sum", 4), ("max", 4)])
def test_layer_fusion_resizes_to_largest(cnn, fusion, channels):
    # stem (4 x 8x8) and stem's conv again; stage has 6 channels at 4x4, so use equal-channel pairs here
    embedder = TorchEmbedder(cnn, ["stem.0", "stem.1"], layer_fusion=fusion)
    assert embedder(torch.rand(2, 1, 8, 8)).shape == (2, channels, 8, 8)


def test_concat_of_different_sizes(cnn):
    out = TorchEmbedder(cnn, ["stem", "stage"])(torch.rand(2, 1, 8, 8))
    assert out.shape == (2, 10, 8, 8)


def test_mean_of_maps_resized_matches_manual(cnn):
    x = torch.rand(2, 1, 8, 8)
    a = cnn.stem(x)
    b = cnn.stem[0](x)
    out = TorchEmbedder(cnn, ["stem", "stem.0"], layer_fusion="max")(x)
    assert torch.allclose(out, torch.maximum(a, b))


def test_groups_and_group_fusion(cnn):
    layers = {"low": ["stem.0", "stem.1"], "high": ["stage.0", "stage.1"]}
    x = torch.rand(2, 1, 8, 8)
    concat = TorchEmbedder(cnn, layers, layer_fusion="mean", group_fusion="concat")(x)
    assert concat.shape == (2, 10, 8, 8)
    with pytest.raises(ValueError, match="same number of channels"):
        TorchEmbedder(cnn, layers, layer_fusion="mean", group_fusion="sum")(x)


def test_vector_and_map_fuse_by_broadcast(cnn):
    out = TorchEmbedder(cnn, ["stem", "head"])(torch.rand(2, 1, 8, 8))
    assert out.shape == (2, 9, 8, 8)
    assert torch.allclose(out[:, 4:, 0, 0], out[:, 4:, 7, 7])


def test_tokens_channels_last(vit):
    x = torch.rand(2, 1, 8, 8)
    out = TorchEmbedder(vit, ["block"], channel_pos=-1)(x)
    assert out.shape == (2, 5, 8)  # (B, T, C) stays tokens
    both = TorchEmbedder(vit, ["block", "block.linear2"], channel_pos=-1, layer_fusion="sum")(x)
    assert both.shape == (2, 5, 8)


def test_channels_last_maps():
    class ChannelsLast(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1)

    x = torch.rand(2, 3, 4, 5)
    out = TorchEmbedder(nn.Sequential(ChannelsLast()), ["0"], channel_pos=-1)(x)
    assert torch.equal(out, x)


def test_unknown_layer_lists_close_names(cnn):
    with pytest.raises(ValueError, match=r"layer 'stage.9' is not in the model; close valid names: \['stage"):
        TorchEmbedder(cnn, ["stage.9"])


def test_bad_arguments(cnn):
    with pytest.raises(ValueError, match="layer_fusion"):
        TorchEmbedder(cnn, layer_fusion="avg")
    with pytest.raises(ValueError, match="channel_pos"):
        TorchEmbedder(cnn, channel_pos=0)
    with pytest.raises(TypeError, match="not a string"):
        TorchEmbedder(cnn, "stem")
    with pytest.raises(TypeError, match="nn.Module"):
        TorchEmbedder(lambda x: x)


def test_hooks_removed_and_mode_restored_also_on_error(cnn):
    cnn.train()
    embedder = TorchEmbedder(cnn, ["stage"])
    embedder(torch.rand(2, 1, 8, 8))
    with pytest.raises(RuntimeError):
        embedder(torch.rand(2, 3, 8, 8))  # wrong channel count fails inside the model
    assert all(not m._forward_hooks for m in cnn.modules())
    assert cnn.training


def test_runs_in_eval_without_grad(cnn):
    cnn.stem.append(nn.Dropout(0.9))
    x = torch.rand(2, 1, 8, 8)
    embedder = TorchEmbedder(cnn, ["stem"])
    first = embedder(x)
    assert torch.equal(first, embedder(x))
    assert not first.requires_grad


def test_stops_after_last_hooked_layer(cnn):
    calls = []
    cnn.head.register_forward_hook(lambda *a: calls.append(1))
    TorchEmbedder(cnn, ["stem"])(torch.rand(1, 1, 8, 8))
    assert calls == []


def test_non_tensor_output_is_refused():
    class Text(nn.Module):
        def forward(self, x):
            return "hello"

    with pytest.raises(TypeError, match="not a tensor"):
        TorchEmbedder(Text())(torch.rand(1, 2))


def test_fuse_rejects_mixed_spatial_ranks():
    with pytest.raises(ValueError, match="spatial dimensions"):
        fuse([torch.rand(1, 2, 3), torch.rand(1, 2, 3, 3)], "concat")


def test_model_digest_follows_weights(cnn):
    before = model_digest(cnn)
    assert before == model_digest(cnn)
    with torch.no_grad():
        cnn.head.bias.add_(1.0)
    assert model_digest(cnn) != before
