"""`curata info TABLE`: rows, dimension, dtype, columns, normalisation, fingerprint, what produced the table, and
whether the describe job that wrote it stopped before the end (``INCOMPLETE``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["run_info", "table_info"]


def table_info(path: Any) -> dict[str, Any]:
    """What ``curata info`` prints, as a dict.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from curata.store.table import VectorTable
        >>> t = VectorTable.from_arrays(os.path.join(tempfile.mkdtemp(), "t"), np.ones((3, 2)))
        >>> info = table_info(t.path)
        >>> info["rows"], info["dim"], info["dtype"], info["normalize"], info["incomplete"]
        (3, 2, 'float32', 'none', None)
    """
    import numpy as np

    from curata.store.table import VectorTable

    table = VectorTable.open(path)
    fingerprint = table.fingerprint
    unreadable = table.get_attr("unreadable", [])
    present = table.sample_ids()
    length = int(fingerprint.get("dataset_length", int(present.max()) + 1 if len(present) else 0))
    # samples of the dataset with no vector: unreadable, an empty mask, a shard not written yet
    missing = np.setdiff1d(np.arange(length), present, assume_unique=True)
    incomplete = _incomplete(table, fingerprint, missing, unreadable)
    return {
        "table": str(table.path),
        "rows": len(table),
        "samples": int(len(present)),
        "without_vector": int(len(missing)),
        "without_vector_first": missing[:10].tolist(),
        "dim": table.dim,
        "dtype": table.dtype,
        "columns": table.columns,
        "labels": table.has_labels,
        "normalize": table.normalization,
        "produced_by": _producer(fingerprint),
        "incomplete": incomplete,
        "unreadable": len(unreadable),
        "unreadable_first": unreadable[:5],
        "fingerprint": fingerprint,
    }


def _incomplete(table: Any, fingerprint: dict[str, Any], missing: Any, unreadable: list[Any]) -> str | None:
    """Why the describe job that wrote ``table`` looks unfinished, or None: fragments its ranks wrote but never
    committed, or samples of the recorded dataset length with no row that were not unreadable (checked only when
    every sample gives vectors: with a ``mask_key`` or ``label_mask_key`` a sample may rightly have none)."""
    import numpy as np

    from curata.embedding.shards import uncommitted_sample_ids

    uncommitted = uncommitted_sample_ids(table.path)
    if len(uncommitted):
        return f"{len(uncommitted)} samples in fragments not committed yet"
    vectorizer = fingerprint.get("vectorizer")
    if "dataset_length" not in fingerprint or not isinstance(vectorizer, dict):
        return None
    if vectorizer.get("mask_key") is not None or vectorizer.get("label_mask_key") is not None:
        return None
    not_embedded = np.setdiff1d(missing, [int(item["idx"]) for item in unreadable])
    if len(not_embedded):
        return f"{len(not_embedded)} of {fingerprint['dataset_length']} samples not embedded yet"
    return None


def _producer(fingerprint: dict[str, Any]) -> str:
    """One line on what made the table, from its fingerprint."""
    if "embedder" in fingerprint:
        embedder = fingerprint["embedder"]
        model = embedder.get("model") or embedder.get("name") or embedder.get("kind")
        source = fingerprint.get("source", {}).get("kind", "a dataset")
        return f"describe: {source} of {fingerprint.get('dataset_length')} samples embedded by {model}"
    if "source_file" in fingerprint:
        return f"built from the file {fingerprint['source_file']}"
    if "embeddings" in fingerprint:
        return "table_from_embeddings: embeddings already computed"
    return "VectorTable.from_arrays or append"


def run_info(args: argparse.Namespace) -> None:
    """Print what ``args.table`` holds (``--json``: as one JSON object)."""
    info = table_info(args.table)
    if args.json:
        print(json.dumps(info, sort_keys=True, default=str))
        return
    for key in ("table", "rows", "samples", "dim", "dtype", "columns", "labels", "normalize", "produced_by"):
        value = ", ".join(info[key]) if isinstance(info[key], list) else info[key]
        print(f"{key:>12}: {value}")
    if info["incomplete"]:
        print(f"{'INCOMPLETE':>12}: {info['incomplete']} (a stopped describe: run the same command to finish it)")
    first = ", ".join(str(i) for i in info["without_vector_first"])
    more = ", ..." if info["without_vector"] > len(info["without_vector_first"]) else ""
    print(f"{'no vector':>12}: {info['without_vector']} samples (no cluster)" + (f": {first}{more}" if first else ""))
    print(
        f"{'unreadable':>12}: {info['unreadable']}"
        + "".join(f"\n{'':>14}{u['where']}: {u['reason']}" for u in info["unreadable_first"])
    )
    print(f"{'fingerprint':>12}: {json.dumps(info['fingerprint'], sort_keys=True, default=str)}")
