"""report(): pictures of what happened to the data, as PNGs and one self-contained HTML page (needs matplotlib)."""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import write_atomically
from curata._internal.checks import check_labels, check_row_ids
from curata.clustering.clusterize import per_sample_majority
from curata.sources.locations import recorded_classes
from curata.store.table import VectorTable

__all__ = ["report", "tree_levels", "project_2d", "label_names"]

_MAP_ROWS = 20_000  # rows drawn on the 2-D map (a seeded sample beyond that)
# UMAP's neighbour graph needs more rows than its 15 neighbours (on 3 rows its spectral start raises a TypeError)
_UMAP_MIN_ROWS = 16
_NAMED_TICKS = 40  # at most this many class names under the label histogram (every k-th beyond), so they stay legible


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("report() needs matplotlib: pip install 'curata[report]'") from exc
    return plt


def _umap() -> Any:
    """The umap module, or None when it is not installed."""
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        return None
    return umap


def project_2d(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """UMAP when installed (``pip install 'curata[demo]'`` or ``umap-learn``) and there are at least
    ``_UMAP_MIN_ROWS`` rows, else PCA (an SVD of the centred rows).

    Example:
        >>> xy, method = project_2d(np.eye(3, dtype=np.float32), seed=0)
        >>> xy.shape, method
        ((3, 2), 'PCA')
    """
    umap = _umap() if len(vectors) >= _UMAP_MIN_ROWS else None
    if umap is not None:
        # seeded, UMAP runs on one thread anyway: n_jobs=1 says so and spares a warning on every call
        return np.asarray(umap.UMAP(random_state=seed, n_jobs=1).fit_transform(vectors)), "UMAP"
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, "PCA"


def label_names(
    table: VectorTable, labels: np.ndarray | None, class_names: Sequence[str] | None = None, source: Any = None
) -> list[str] | None:
    """Display name of each label value 0..max of ``labels`` (None without labels): ``class_names`` when given,
    else the ``source``'s ``classes`` when they are names, else the class names of the source ``describe``
    recorded with ``table``, else the numbers.

    Raises TypeError when ``class_names`` is not a list of strings, ValueError when it names fewer classes than
    the labels reach.

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.ones((3, 2)), labels=[0, 1, 1])
        >>> label_names(t, t.column("label"), ["cat", "dog"]), label_names(t, t.column("label"))
        (['cat', 'dog'], ['0', '1'])
    """
    if class_names is not None:
        given = class_names.tolist() if isinstance(class_names, np.ndarray) else class_names
        named = isinstance(given, Sequence) and not isinstance(given, str) and all(isinstance(c, str) for c in given)
        if not named:
            raise TypeError(f"class_names must be a list of strings, one per label, got {class_names!r:.80}")
    if labels is None:
        return None
    top = int(labels.max()) + 1 if len(labels) else 0
    if class_names is not None:
        if len(given) < top:
            raise ValueError(
                f"class_names has {len(given)} names but the table's labels go up to {top - 1}: give one per label"
            )
        return [str(name) for name in given[:top]]
    for classes in (getattr(source, "classes", None), recorded_classes(table)):
        if classes is not None and len(classes) >= top and all(isinstance(c, str) for c in classes):
            return [str(name) for name in classes[:top]]
    return [str(v) for v in range(top)]


def _save(fig: Any, out_dir: Path, name: str, plt: Any) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buffer.getvalue()
    write_atomically(out_dir / name, lambda file: file.write_bytes(data))
    return name, data


def tree_levels(table: VectorTable, tree: Any, cluster_column: str) -> np.ndarray | None:
    """(rows, levels) cluster ids from ``tree`` or the table's column, checked against the table (None: neither)."""
    rows = len(table)
    if isinstance(tree, np.ndarray):  # cluster ids as saved by `curata curate` (labels.npy): (rows,) or (rows, levels)
        if tree.ndim not in (1, 2) or tree.shape[0] != rows:
            raise ValueError(f"tree labels have shape {tree.shape}, the table has {rows} rows: not this table's tree")
        labels = tree.reshape(rows, -1)
        for level in range(labels.shape[1]):
            check_labels(labels[:, level], "tree labels", rows)
    elif tree is not None:
        if not hasattr(tree, "labels_"):
            raise TypeError(
                f"tree must be a fitted HierarchicalKMeans or KMeans (with labels_), got {type(tree).__name__}"
            )
        labels = np.asarray(tree.labels_)
        fitted_dim = getattr(tree, "n_features_in_", table.dim)
        if labels.ndim not in (1, 2) or labels.shape[0] != rows or fitted_dim != table.dim:
            raise ValueError(
                f"tree was fitted on other rows: its labels_ have shape {labels.shape} and it saw {fitted_dim} "
                f"features, the table has {rows} rows of dimension {table.dim}"
            )
        labels = labels.reshape(rows, -1)
        for level in range(labels.shape[1]):
            check_labels(labels[:, level], "tree.labels_", rows)
    elif cluster_column in table.columns:
        labels = check_labels(table.column(cluster_column), f"column {cluster_column!r}", rows).reshape(rows, 1)
    else:
        return None
    if labels.size and labels.min() < 0:
        raise ValueError(f"cluster ids must be >= 0, got {int(labels.min())}")
    return labels.astype(np.int64, copy=False)


def report(
    table: VectorTable,
    out_dir: str | os.PathLike[str],
    *,
    tree: Any = None,
    curated: Any = None,
    sampler: Any = None,
    class_names: Sequence[str] | None = None,
    cluster_column: str = "cluster",
    seed: int = 0,
) -> Path:
    """Write ``index.html`` (images embedded, so the page stands alone) and its PNGs into ``out_dir``.

    Figures: cluster sizes per level (from ``tree``, or the table's ``cluster_column``); a 2-D map of the vectors
    (UMAP when installed, else PCA) coloured by cluster; label histograms of the pool and of the ``curated`` row
    ids when the table has labels, under their ``class_names`` (default: the names of the classes of the source
    ``describe`` recorded with the table, else the numbers); the cluster composition of the ``sampler``'s first
    batches.

    Returns:
        The path of ``index.html``.

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.random.default_rng(0).random((50, 4)))
        >>> report(t, os.path.join(tempfile.mkdtemp(), "report")).name
        'index.html'
    """
    if not isinstance(table, VectorTable):
        raise TypeError(f"table must be a VectorTable, got {type(table).__name__}")
    rows = len(table)
    level_labels = tree_levels(table, tree, cluster_column)
    if curated is not None:
        curated = check_row_ids(curated, "curated", rows)
    labels = table.column("label").astype(np.int64) if table.has_labels else None
    names = label_names(table, labels, class_names)  # checked before anything is written
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str, bytes]] = []
    if level_labels is not None:
        levels = level_labels.shape[1]
        fig, axes = plt.subplots(1, levels, figsize=(4.5 * levels, 3.2), squeeze=False)
        for t in range(levels):
            sizes = np.bincount(level_labels[:, t])
            sizes = np.sort(sizes[sizes > 0])[::-1]
            axes[0, t].bar(np.arange(len(sizes)), sizes, width=1.0, color="#4472c4")
            axes[0, t].set_yscale("log")
            axes[0, t].set_title(f"level {t + 1}: {len(sizes)} clusters" if levels > 1 else f"{len(sizes)} clusters")
            axes[0, t].set_xlabel("cluster (largest first)")
            axes[0, t].set_ylabel("rows")
        figures.append(("Cluster sizes", *_save(fig, out, "cluster_sizes.png", plt)))
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(rows, _MAP_ROWS, replace=False)) if rows > _MAP_ROWS else np.arange(rows)
    points, method = project_2d(table.vectors(shown).astype(np.float32), seed)
    fig, ax = plt.subplots(figsize=(6, 5))
    colour = level_labels[shown, -1] if level_labels is not None else None
    style = {"c": colour, "cmap": "tab20"} if colour is not None else {}
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.7, linewidths=0, **style)
    ax.set_title(
        f"{method} of {len(shown)} vectors" + (", coloured by top-level cluster" if colour is not None else "")
    )
    figures.append(("Map of the vectors", *_save(fig, out, "map.png", plt)))
    if labels is not None and names is not None:
        classes = len(names)
        fig, ax = plt.subplots(figsize=(7, 3.2))
        pool = np.bincount(labels, minlength=classes) / len(labels)
        width = 0.4 if curated is not None else 0.8
        ax.bar(np.arange(classes) - (width / 2 if curated is not None else 0), pool, width=width, label="pool")
        if curated is not None:
            picked = np.bincount(labels[curated], minlength=classes)
            ax.bar(np.arange(classes) + width / 2, picked / max(1, picked.sum()), width=width, label="curated")
        step = math.ceil(classes / _NAMED_TICKS) if classes else 1
        slanted = classes > 10 or max((len(n) for n in names), default=0) > 6  # else the names overlap
        ax.set_xticks(
            np.arange(0, classes, step), names[::step], **({"rotation": 45, "ha": "right"} if slanted else {})
        )
        ax.set_xlabel("class")
        ax.set_ylabel("share")
        ax.legend()
        figures.append(("Labels: pool and curated subset", *_save(fig, out, "labels.png", plt)))
    if sampler is not None:
        batches = list(itertools.islice(iter(sampler), 12))
        fig, ax = plt.subplots(figsize=(7, 3.2))
        sampler_clusters = table.column(cluster_column) if cluster_column in table.columns else None
        if sampler_clusters is None and level_labels is not None:
            sampler_clusters = level_labels[:, 0]
        if sampler_clusters is not None:
            per_sample = per_sample_majority(table.column("idx"), sampler_clusters)
            distinct = [len(set(per_sample[np.asarray(b)].tolist())) for b in batches]
            ax.bar(np.arange(len(batches)), distinct, color="#70ad47", label="distinct clusters")
        ax.plot(np.arange(len(batches)), [len(b) for b in batches], "k--", label="batch size")
        ax.set_xlabel("batch")
        ax.legend()
        ax.set_title("first batches of the sampler (current epoch)")
        figures.append(("Sampler batches", *_save(fig, out, "batches.png", plt)))
    sections = "\n".join(
        f'<h2>{html.escape(title)}</h2>\n<img alt="{html.escape(title)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}">\n<p class="file">{html.escape(name)}</p>'
        for title, name, data in figures
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>curata report</title>
<style>body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; }} img {{ max-width: 100%; }}
.file {{ color: #888; font-size: small; }}</style></head>
<body><h1>curata report</h1>
<p>{rows} vectors of dimension {table.dim} from <code>{html.escape(str(table.path))}</code>.</p>
{sections}
</body></html>
"""
    return write_atomically(out / "index.html", lambda file: file.write_text(page))
