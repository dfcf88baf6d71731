"""explore(): one HTML page to look at the data: a map of the embedding with the samples on hover, a gallery of
each cluster, the curated subset against the pool, duplicate groups, splits and the sampler's first batches."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curata._internal.atomic import write_atomically
from curata._internal.checks import check_int
from curata.exploring.page import render_page
from curata.exploring.report import label_names, project_2d, tree_levels
from curata.exploring.samples import SampleViews
from curata.sources.locations import Locations, recorded_source
from curata.store.samples import rows_of
from curata.store.table import VectorTable
from curata.subsets.curate import water_fill

__all__ = ["explore"]

_GALLERY_CLUSTERS = 40  # per level, largest first
_GALLERY_NEAREST, _GALLERY_RANDOM = 8, 4
_DUPLICATE_GROUPS = 30
_BATCHES, _BATCH_SHOWN = 4, 48
_LEAKAGE_ROWS = 50_000  # leakage is all pairs across splits: computed up to this many rows


def _map_rows(clusters: np.ndarray | None, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows drawn for the map: all when they fit; else every cluster keeps min(size, tau) rows (water-filling,
    so small clusters are shown whole), chosen at random within it."""
    rows = len(clusters) if clusters is not None else 0
    if clusters is None or rows <= budget:
        return np.arange(rows)
    sizes = np.bincount(clusters)
    quotas = water_fill(np.zeros(len(sizes), np.int64), sizes, np.array([budget]), rng)
    order = np.argsort(clusters, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    picked = [rng.choice(order[s : s + n], q, replace=False) for s, n, q in zip(starts, sizes, quotas) if q]
    return np.sort(np.concatenate(picked))


def _label_mix(labels: np.ndarray | None, members: np.ndarray, names: list[str] | None) -> list[list[Any]]:
    if labels is None or not len(members):
        return []
    counts = np.bincount(labels[members], minlength=len(names or []))
    top = np.argsort(-counts, kind="stable")[:3]
    return [[names[t] if names else str(t), round(float(counts[t] / len(members)), 3)] for t in top if counts[t]]


def _places(table: VectorTable, source: Any, samples: int) -> Locations | None:
    """Where the samples lie (for their file names): the ``source``'s own ``locations()`` when it has them, else
    those ``describe`` recorded with the table; None when neither is known or they do not cover the sample ids."""
    locate = getattr(source, "locations", None)
    try:
        places = locate() if callable(locate) else recorded_source(table)
    except (OSError, ValueError):  # its samples file is gone or damaged: the page goes without file names
        places = None
    return places if isinstance(places, Locations) and len(places) >= samples else None


def _default_colour(labels: np.ndarray | None, levels: np.ndarray | None, points: Mapping[str, Any]) -> str:
    """What the map is coloured by when the page opens: the labels when there are (the question a user asks first
    is whether clusters follow classes), else the first cluster level, else the first flag there is."""
    if labels is not None:
        return "label"
    if levels is not None:
        return "cluster0"
    return next((key for key in ("curated", "selected", "split") if points[key] is not None), "none")


def _checked_groups(groups: Any) -> Sequence[Any]:
    if isinstance(groups, np.ndarray) or not isinstance(groups, Sequence):
        raise TypeError(
            f"duplicates must be a list of arrays of sample ids (dedup's groups), got {type(groups).__name__}"
        )
    return groups


def explore(
    table: VectorTable,
    out_dir: str | os.PathLike[str],
    *,
    source: Any = None,
    tree: Any = None,
    curated: Any = None,
    selected: Any = None,
    splits: Mapping[str, Any] | None = None,
    duplicates: Sequence[Any] | None = None,
    sampler: Any = None,
    class_names: Sequence[str] | None = None,
    cluster_column: str = "cluster",
    max_points: int = 20_000,
    max_thumbnails: int = 3_000,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/explorer.html``: one page that opens offline in any browser (no server, no CDN).

    It holds a zoomable map of the vectors (UMAP when installed, else PCA; a seeded sample of ``max_points`` rows
    that keeps every cluster, small ones whole) where hovering or clicking a point shows its sample (thumbnail or
    text), file, ids, label, clusters and flags, coloured by label (when the table has labels, with a legend of
    their names; else by cluster), cluster level, curated or split; a gallery of the
    largest clusters of each level (size, label mix, curated count, the samples nearest the centroid and a few at
    random); the curated subset against the pool per top cluster; ``duplicates`` groups side by side; the
    ``splits``' composition per cluster and their leakage pairs; the ``sampler``'s first batches.

    Args:
        table: the vectors.
        out_dir: where the page goes (created).
        source: the dataset the table was described from (indexed by sample id), for thumbnails or snippets;
            without it the page works without pictures and says why. The samples' file names come from its
            ``locations()``, else from the source ``describe`` recorded with the table.
        tree: a fitted HierarchicalKMeans or KMeans of these rows (else the table's ``cluster_column``).
        curated: sample ids of a curated subset; selected: sample ids picked by ``select`` (e.g. for
            annotation); splits: name -> sample ids; duplicates: groups of sample ids (``dedup``'s second result);
            sampler: a batch sampler over the samples (ClusterBatchSampler).
        class_names: label names (default: the source's ``classes`` when they are names, else the class names of
            the source ``describe`` recorded with the table).
        max_points, max_thumbnails: how many rows the map draws, and how many of them carry a thumbnail.

    Example:
        >>> import tempfile, os
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.random.default_rng(0).random((50, 4)))
        >>> explore(t, os.path.join(tempfile.mkdtemp(), "page")).name
        'explorer.html'
    """
    if not isinstance(table, VectorTable):
        raise TypeError(f"table must be a VectorTable, got {type(table).__name__}")
    check_int(max_points, "max_points", minimum=1)
    check_int(max_thumbnails, "max_thumbnails", minimum=0)
    rows = len(table)
    levels = tree_levels(table, tree, cluster_column)
    # what the user hands in names samples (as curate, select, split and dedup return them); the page draws rows
    curated_rows = None if curated is None else rows_of(table, curated, "curated")
    selected_rows = None if selected is None else rows_of(table, selected, "selected")
    split_rows = {str(k): rows_of(table, v, f"splits[{k!r}]") for k, v in (splits or {}).items()}
    groups = (
        []
        if duplicates is None
        else [rows_of(table, g, f"duplicates[{i}]") for i, g in enumerate(_checked_groups(duplicates))]
    )
    sample_ids = table.column("idx").astype(np.int64)
    views = SampleViews(source, int(sample_ids.max()) + 1 if rows else 0)
    labels = table.column("label").astype(np.int64) if table.has_labels else None
    names = label_names(table, labels, class_names, source)
    places = _places(table, source, int(sample_ids.max()) + 1 if rows else 0)
    rng = np.random.default_rng(seed)
    shown = _map_rows(levels[:, 0] if levels is not None else np.zeros(rows, np.int64), max_points, rng)
    vectors = table.vectors(shown).astype(np.float32)
    xy, method = project_2d(vectors, seed) if len(shown) > 2 else (np.zeros((len(shown), 2)), "none")
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0)

    flags_curated = np.zeros(rows, bool)
    if curated_rows is not None:
        flags_curated[curated_rows] = True
    flags_selected = np.zeros(rows, bool)
    if selected_rows is not None:
        flags_selected[selected_rows] = True
    split_of = np.full(rows, -1, np.int64)
    for number, members in enumerate(split_rows.values()):
        split_of[members] = number
    group_of = np.full(rows, -1, np.int64)
    for number, members in enumerate(groups):
        group_of[members] = number

    wanted: dict[int, None] = {}  # sample ids whose view the page needs, in order of need

    def want(row_ids: Any) -> list[int]:
        ids = [int(sample_ids[r]) for r in np.asarray(row_ids, dtype=np.int64)]
        for i in ids:
            wanted.setdefault(i, None)
        return ids

    galleries = []
    for level in range(levels.shape[1] if levels is not None else 0):
        assert levels is not None
        per_row = levels[:, level]
        sizes = np.bincount(per_row)
        cards = []
        for cluster in np.argsort(-sizes, kind="stable")[:_GALLERY_CLUSTERS]:
            if not sizes[cluster]:
                break
            members = np.flatnonzero(per_row == cluster)
            sampled = np.flatnonzero(per_row[shown] == cluster)
            centre = vectors[sampled].mean(axis=0) if len(sampled) else None
            near = sampled[np.argsort(((vectors[sampled] - centre) ** 2).sum(axis=1))[:_GALLERY_NEAREST]]
            rest = np.setdiff1d(sampled, near)
            extra = rng.choice(rest, min(_GALLERY_RANDOM, len(rest)), replace=False) if len(rest) else rest
            cards.append(
                {
                    "cluster": int(cluster),
                    "size": int(sizes[cluster]),
                    "curated": int(flags_curated[members].sum()) if curated_rows is not None else None,
                    "labels": _label_mix(labels, members, names),
                    "nearest": want(shown[near]),
                    "random": want(shown[extra]),
                }
            )
        galleries.append({"level": level + 1, "clusters": int((sizes > 0).sum()), "cards": cards})

    balance = None
    if curated_rows is not None and levels is not None:
        top = levels[:, -1]
        pool = np.bincount(top)
        picked = np.bincount(top[curated_rows], minlength=len(pool))
        order = np.argsort(-pool, kind="stable")[:_GALLERY_CLUSTERS]
        balance = {
            "pool": int(rows),
            "curated": int(len(curated_rows)),
            "clusters": [[int(c), int(pool[c]), int(picked[c])] for c in order if pool[c]],
        }

    duplicate_cards = []
    if groups:
        centred_mean = vectors.mean(axis=0) if len(vectors) else 0.0
        for number in sorted(range(len(groups)), key=lambda g: -len(groups[g]))[:_DUPLICATE_GROUPS]:
            members = groups[number]
            block = table.vectors(members).astype(np.float64) - centred_mean
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            similarity = block @ block[0]
            duplicate_cards.append(
                {"group": number, "samples": want(members), "similarity": [round(float(s), 3) for s in similarity]}
            )

    split_view = None
    if split_rows:
        top = levels[:, -1] if levels is not None else np.zeros(rows, np.int64)
        pool = np.bincount(top)
        order = np.argsort(-pool, kind="stable")[:_GALLERY_CLUSTERS]
        counts = {name: np.bincount(top[members], minlength=len(pool)) for name, members in split_rows.items()}
        pairs: list[Any] = []
        note = ""
        if rows <= _LEAKAGE_ROWS:
            from curata.subsets.split import leakage

            found = leakage({name: np.unique(sample_ids[m]) for name, m in split_rows.items()}, table)
            for a, i, b, j, similarity in list(zip(*found.values()))[:20]:
                wanted.setdefault(int(i), None)
                wanted.setdefault(int(j), None)
                pairs.append([str(a), int(i), str(b), int(j), round(float(similarity), 3)])
            note = f"{len(found['cosine'])} pairs across splits closer than dedup's default threshold"
        else:
            note = f"leakage not computed: {rows} rows is more than {_LEAKAGE_ROWS} (curata.leakage computes it)"
        split_view = {
            "names": list(split_rows),
            "sizes": [int(len(m)) for m in split_rows.values()],
            "clusters": [[int(c), *[int(counts[n][c]) for n in split_rows]] for c in order if pool[c]],
            "pairs": pairs,
            "note": note,
        }

    batches = []
    if sampler is not None:
        for batch in itertools.islice(iter(sampler), _BATCHES):
            ids = [int(i) for i in list(batch)[:_BATCH_SHOWN]]
            for i in ids:
                wanted.setdefault(i, None)
            batches.append({"size": len(batch), "samples": ids})

    map_thumbs = 0
    for row in shown:
        if map_thumbs >= max_thumbnails:
            break
        if int(sample_ids[row]) not in wanted:
            wanted[int(sample_ids[row])] = None
            map_thumbs += 1

    samples: dict[str, Any] = {}
    unreadable = 0
    for i in list(wanted)[: max_thumbnails + 2_000] if views.kind else []:
        view = views.thumbnail(i) if views.kind == "image" else views.snippet(i)
        if view is None:
            unreadable += 1
        else:
            samples[str(i)] = view

    points = {
        "x": [round(float(v), 4) for v in xy[:, 0]],
        "y": [round(float(v), 4) for v in xy[:, 1]],
        "row": shown.tolist(),
        "idx": sample_ids[shown].tolist(),
        "label": labels[shown].tolist() if labels is not None else None,
        "levels": [levels[shown, t].tolist() for t in range(levels.shape[1])] if levels is not None else [],
        "curated": flags_curated[shown].astype(int).tolist() if curated_rows is not None else None,
        "selected": flags_selected[shown].astype(int).tolist() if selected_rows is not None else None,
        "split": split_of[shown].tolist() if split_rows else None,
        "group": group_of[shown].tolist() if groups else None,
        "file": None,
    }
    file_prefix = ""
    if places is not None:  # the common start of the paths is written once: the JSON is MBs smaller at 20,000 points
        files = [places.where(i) for i in points["idx"]]
        file_prefix = os.path.commonprefix(files)
        points["file"] = [f[len(file_prefix) :] for f in files]
    data = {
        "table": str(table.path),
        "rows": rows,
        "dim": table.dim,
        "method": method,
        "points": points,
        "names": names,
        "colour": _default_colour(labels, levels, points),
        "filePrefix": file_prefix,
        "splitNames": list(split_rows),
        "kind": views.kind,
        "why": views.why if views.kind is None else "",
        "samples": samples,
        "unreadable": unreadable,
        "galleries": galleries,
        "balance": balance,
        "duplicates": duplicate_cards,
        "splits": split_view,
        "batches": batches,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = render_page(json.dumps(data, separators=(",", ":")))
    return write_atomically(out / "explorer.html", lambda file: file.write_text(page, encoding="utf-8"))
