"""TorchEmbedder: features from named layers of any PyTorch model, through forward hooks, fused into one tensor."""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import itertools
import types
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TorchEmbedder",
    "FUSIONS",
    "as_embedder",
    "check_not_meta",
    "embedder_fingerprint",
    "fuse",
    "model_digest",
    "reachable_weights",
]

FUSIONS = ("concat", "mean", "sum", "max")
_OUTPUT = ""  # the hook name of the model itself, i.e. its output
# how deep reachable_weights looks through attributes and containers: a model held by an object held by a
# closure is found; a whole object graph is not walked
_WALK_DEPTH = 4
_WALK_ITEMS = 256  # entries looked at per container: models live in small ones, not in vocabularies


class _AllLayersSeen(Exception):
    """Raised inside the forward pass once every hooked layer has fired, to skip the layers after them."""


def _check_fusion(value: str, name: str) -> str:
    if value not in FUSIONS:
        raise ValueError(f"{name} must be one of {FUSIONS}, got {value!r}")
    return value


def _first_tensor(output: Any) -> Any:
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return output


def _to_channels_first(features: torch.Tensor, channel_pos: int) -> torch.Tensor:
    if features.ndim < 2:
        raise ValueError(f"layer output must have a batch and a channel dimension, got shape {tuple(features.shape)}")
    position = channel_pos % features.ndim
    if position == 0:
        raise ValueError("channel_pos cannot point at the batch dimension (0)")
    return features.movedim(position, 1) if position != 1 else features


def _resize_to(features: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    if features.ndim == 2:  # a pooled vector spreads over every position of the larger maps
        return features.reshape(*features.shape, *([1] * len(size))).expand(*features.shape, *size)
    if tuple(features.shape[2:]) == size:
        return features
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(size))
    if mode is None:
        raise ValueError(f"cannot resize features with {len(size)} spatial dimensions")
    return F.interpolate(features.float(), size=size, mode=mode, align_corners=False).to(features.dtype)


def fuse(features: Sequence[torch.Tensor], strategy: str) -> torch.Tensor:
    """Fuse channels-first tensors (B, C, *S): resize all to the largest spatial size, then combine.

    Example:
        >>> a, b = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 2, 2)
        >>> fuse([a, b], "concat").shape, fuse([a, b], "mean").shape
        (torch.Size([2, 6, 4, 4]), torch.Size([2, 3, 4, 4]))
    """
    _check_fusion(strategy, "strategy")
    if len(features) == 1:
        return features[0]
    spatial_ndims = {f.ndim - 2 for f in features if f.ndim > 2}
    if len(spatial_ndims) > 1:
        shapes = [tuple(f.shape) for f in features]
        raise ValueError(f"cannot fuse features with different numbers of spatial dimensions: {shapes}")
    if spatial_ndims:
        ndim = spatial_ndims.pop()
        size = tuple(max(f.shape[2 + i] for f in features if f.ndim > 2) for i in range(ndim))
        features = [_resize_to(f, size) for f in features]
    if strategy == "concat":
        return torch.cat(list(features), dim=1)
    channels = {f.shape[1] for f in features}
    if len(channels) > 1:
        raise ValueError(
            f"fusion {strategy!r} needs the same number of channels everywhere, got {sorted(channels)}; use 'concat'"
        )
    stacked = torch.stack(list(features), dim=0)
    if strategy == "mean":
        return stacked.mean(dim=0)
    if strategy == "sum":
        return stacked.sum(dim=0)
    return stacked.amax(dim=0)


def _update_with_tensor(digest: Any, tensor: torch.Tensor) -> None:
    digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}".encode())
    data = tensor.detach()
    if data.layout != torch.strided:
        data = data.to_dense()
    data = data.to("cpu").contiguous()
    if data.numel():
        digest.update(data.reshape(-1).view(torch.uint8).numpy())


def model_digest(model: nn.Module) -> str:
    """A hash of the model's class and every parameter and buffer (names, shapes, dtypes, values).

    Example:
        >>> model_digest(nn.Linear(2, 2)) == model_digest(nn.Linear(2, 2))  # two random initialisations
        False
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            digest.update(f"{name}:".encode())
            _update_with_tensor(digest, tensor)
    return digest.hexdigest()


class _WeightsSeen:
    """The weights a digest was made of: each tensor by a weak reference (a freed tensor's id and memory can be
    reused by the next one loaded), its version (in-place updates bump it) and its storage (``.data =``, as
    ``.half()`` and ``.to()`` do, swaps it)."""

    def __init__(self, model: nn.Module, digest: str) -> None:
        self.seen = [(name, weakref.ref(t), _state(t)) for name, t in _tensors(model)]
        self.digest = digest

    def still(self, model: nn.Module) -> bool:
        now = _tensors(model)
        if len(now) != len(self.seen):
            return False
        same = zip(self.seen, now, strict=True)
        return all(name == n and ref() is t and state == _state(t) for (name, ref, state), (n, t) in same)


def _state(tensor: torch.Tensor) -> tuple[Any, ...]:
    return tensor._version, tensor.data_ptr(), tensor.dtype, tensor.device, tuple(tensor.shape)


def _tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, t) for n, t in model.state_dict(keep_vars=True).items() if isinstance(t, torch.Tensor)]


# a job rerun in one process hashes a model's weights again only when one of them changed
_DIGESTS: weakref.WeakKeyDictionary[nn.Module, _WeightsSeen] = weakref.WeakKeyDictionary()


def _current_digest(model: nn.Module) -> str:
    """``model_digest(model)``, remembered until a weight changes (training, load_state_dict, .half())."""
    try:
        cached = _DIGESTS.get(model)
        if cached is not None and cached.still(model):
            return cached.digest
        digest = model_digest(model)
        _DIGESTS[model] = _WeightsSeen(model, digest)
        return digest
    except RuntimeError:  # tensors made under inference_mode track no version: hashed every time
        return model_digest(model)


class TorchEmbedder:
    """Embeds a batch with a PyTorch model, reading the outputs of named layers through forward hooks.

    Args:
        model: any ``nn.Module``.
        layers: dotted module names from ``model.named_modules()``: a list (one group) or a dict of named groups.
            ``None`` uses the model's output.
        layer_fusion: how layers of one group are combined: "concat", "mean", "sum" or "max".
        group_fusion: how the groups are combined, with the same choices.
        channel_pos: where the channels are in the layers' outputs: 1 for (B, C, H, W), -1 for channels-last
            maps and token sequences (B, T, C).
        device: where the model runs (default: where its parameters are).

    The result is (B, C) for vectors, (B, T, C) for token sequences and (B, C, H, W) for maps, the layout
    ``Vectorizer`` expects. Maps of different sizes are resized (bilinear) to the largest before fusion.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2))
        >>> TorchEmbedder(net, ["0", "2"])(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 9, 8, 8])
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        *,
        layer_fusion: str = "concat",
        group_fusion: str = "concat",
        channel_pos: int = 1,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.layer_fusion = _check_fusion(layer_fusion, "layer_fusion")
        self.group_fusion = _check_fusion(group_fusion, "group_fusion")
        if not isinstance(channel_pos, int) or channel_pos == 0:
            raise ValueError(
                f"channel_pos must be a non-zero int (1: channels first, -1: channels last), got {channel_pos!r}"
            )
        self.channel_pos = channel_pos
        self.groups = self._parse_layers(layers)
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
        self.device = torch.device(device)

    def _parse_layers(self, layers: Any) -> dict[str, list[str]]:
        if layers is None:
            return {"output": [_OUTPUT]}
        if isinstance(layers, str):
            raise TypeError(f"layers must be a list or a dict of lists of layer names, not a string: use [{layers!r}]")
        if isinstance(layers, Mapping):
            groups = {str(k): list(v) for k, v in layers.items()}
        else:
            groups = {"layers": list(layers)}
        valid = [name for name, _ in self.model.named_modules() if name]
        valid_set = set(valid)
        for group, names in groups.items():
            if not names:
                raise ValueError(f"layers group {group!r} is empty")
            for name in names:
                if name not in valid_set:
                    close = difflib.get_close_matches(str(name), valid, n=5, cutoff=0.4) or valid[:5]
                    raise ValueError(f"layer {name!r} is not in the model; close valid names: {close}")
        return groups

    def fingerprint(self) -> dict[str, Any]:
        """What makes this embedder's output what it is: model class and weights, layers and fusion settings."""
        return {
            "kind": "TorchEmbedder",
            "model": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "weights": _current_digest(self.model),  # remade when a weight changed (training, load_state_dict)
            "layers": self.groups,
            "layer_fusion": self.layer_fusion,
            "group_fusion": self.group_fusion,
            "channel_pos": self.channel_pos,
        }

    def __call__(self, batch: Any) -> torch.Tensor:
        """Run the model on ``batch`` (a tensor, or what the model takes) and return the fused features."""
        wanted = {name for names in self.groups.values() for name in names}
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())

        def record(name: str) -> Callable[..., None]:
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                if name not in captured:
                    captured[name] = _first_tensor(output)
                if name != _OUTPUT and len(captured) == len(wanted):
                    raise _AllLayersSeen

            return hook

        handles = [modules[name].register_forward_hook(record(name)) for name in wanted]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                try:
                    self.model(_to_device(batch, self.device))
                except _AllLayersSeen:
                    pass
        finally:
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        for name, value in captured.items():
            if not isinstance(value, torch.Tensor):
                shown = "the model's output" if name == _OUTPUT else f"layer {name!r}"
                raise TypeError(f"{shown} returned {type(value).__name__}, not a tensor")
        group_features = [
            fuse([_to_channels_first(captured[n], self.channel_pos) for n in names], self.layer_fusion)
            for names in self.groups.values()
        ]
        fused = fuse(group_features, self.group_fusion)
        return fused.movedim(1, -1) if fused.ndim == 3 else fused  # tokens go back to (B, T, C)


def as_embedder(embedder: Any) -> Callable[[Any], torch.Tensor]:
    """A callable batch -> Tensor: nn.Modules are wrapped in a TorchEmbedder (their output), callables kept."""
    if isinstance(embedder, nn.Module) and not isinstance(embedder, TorchEmbedder):
        return TorchEmbedder(embedder)
    if not callable(embedder):
        raise TypeError(
            f"embedder must be a TorchEmbedder, an nn.Module or a callable batch -> Tensor, "
            f"got {type(embedder).__name__}"
        )
    return embedder


def _walk(obj: Any, where: str, depth: int, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """(where, leaf) for the modules, tensors and torch devices reachable from ``obj``, in a fixed order."""
    if id(obj) in seen or depth > _WALK_DEPTH:
        return
    seen.add(id(obj))
    if isinstance(obj, (nn.Module, torch.Tensor, torch.device)):
        yield where, obj
        return
    if obj is None or isinstance(obj, (str, bytes, int, float, complex, types.ModuleType, type)):
        return
    inner: list[tuple[str, Any]] = []
    if isinstance(obj, functools.partial):
        inner = [("func", obj.func), *((f"args[{i}]", a) for i, a in enumerate(obj.args))]
        inner += [(f"keywords[{k!r}]", v) for k, v in sorted(obj.keywords.items())]
    elif inspect.ismethod(obj):
        inner = [("__self__", obj.__self__), ("__func__", obj.__func__)]
    elif inspect.isfunction(obj):
        cells = zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True)
        inner = [(name, cell.cell_contents) for name, cell in cells if _cell_filled(cell)]
        inner += [(f"defaults[{i}]", v) for i, v in enumerate(obj.__defaults__ or ())]
        inner += [(f"kwdefaults[{k!r}]", v) for k, v in sorted((obj.__kwdefaults__ or {}).items())]
        # a module-level model that the function calls by name is part of what it computes
        inner += [(name, obj.__globals__[name]) for name in obj.__code__.co_names if name in obj.__globals__]
    elif isinstance(obj, Mapping):
        keys = sorted(obj, key=repr)[:_WALK_ITEMS]
        inner = [(f"[{k!r}]", obj[k]) for k in keys]
    elif isinstance(obj, (list, tuple)):
        inner = [(f"[{i}]", v) for i, v in enumerate(obj[:_WALK_ITEMS])]
    elif hasattr(obj, "__dict__") and not inspect.isroutine(obj):
        inner = [(f".{k}", v) for k, v in list(vars(obj).items())[:_WALK_ITEMS]]
    for name, value in inner:
        yield from _walk(value, f"{where}{'' if name[0] in '.[' else '.'}{name}", depth + 1, seen)


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def reachable_weights(obj: Any) -> list[tuple[str, nn.Module | torch.Tensor]]:
    """The modules and tensors that ``obj`` can compute with: itself, a bound method's ``__self__``, a function's
    closure cells, defaults and the globals it names, a ``functools.partial``'s arguments, and the attributes and
    container entries of those, up to 4 levels deep (the first 256 entries of each container).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> [where for where, _ in reachable_weights(lambda batch: model(batch))]
        ['model']
    """
    found = _walk(obj, "", 0, set())
    return [(where.lstrip("."), leaf) for where, leaf in found if not isinstance(leaf, torch.device)]


def _weights_digest(obj: Any) -> str | None:
    """A hash of every module's weights and every tensor reachable from ``obj`` (None when there is none)."""
    found = reachable_weights(obj)
    if not found:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for where, leaf in found:
        digest.update(f"{where}\0".encode())
        if isinstance(leaf, nn.Module):
            digest.update(_current_digest(leaf).encode())
        else:
            _update_with_tensor(digest, leaf)
    return digest.hexdigest()


def embedder_fingerprint(embedder: Any) -> Any:
    """The embedder's own ``fingerprint()``; for a plain callable, its qualified name and a hash of the weights it
    can reach (see ``reachable_weights``; None when it reaches none), so that a retrained model behind the same
    function is told apart.

    Example:
        >>> embedder_fingerprint(lambda batch: batch)["weights"] is None
        True
    """
    fingerprint = getattr(embedder, "fingerprint", None)
    if callable(fingerprint):
        return fingerprint()
    name = getattr(embedder, "__qualname__", type(embedder).__qualname__)
    return {
        "kind": "callable",
        "name": f"{getattr(embedder, '__module__', '')}.{name}",
        "weights": _weights_digest(embedder),
    }


def check_not_meta(embedder: Any, argument: str = "embedder") -> None:
    """Raise when the embedder would run on the ``meta`` device (shapes, no data): a module's weight or a tensor
    it holds is there, or it moves batches there.

    Example:
        >>> try:
        ...     check_not_meta(nn.Linear(2, 2).to("meta"))
        ... except ValueError as error:
        ...     print(str(error)[:63])
        embedder: the model's weight 'weight' is on the 'meta' device (
    """
    load = "load real weights (e.g. model.to_empty(device='cpu'), then load_state_dict) before describing"
    for where, leaf in _walk(embedder, "", 0, set()):
        shown = where.lstrip(".")
        if isinstance(leaf, nn.Module):
            weights = itertools.chain(leaf.named_parameters(), leaf.named_buffers())
            name = next((name for name, tensor in weights if tensor.is_meta), None)
            if name is not None:
                full = f"{shown}.{name}" if shown else name
                raise ValueError(
                    f"{argument}: the model's weight {full!r} is on the 'meta' device (shapes, no data): {load}"
                )
        elif isinstance(leaf, torch.Tensor) and leaf.is_meta:
            raise ValueError(f"{argument}: the tensor {shown!r} is on the 'meta' device (shapes, no data): {load}")
        elif isinstance(leaf, torch.device) and leaf.type == "meta":
            raise ValueError(
                f"{argument}: it runs on the 'meta' device ({shown or 'device'}), which holds no data: "
                "pass a real device (e.g. device='cpu')"
            )


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
