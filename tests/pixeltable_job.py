"""Run in a subprocess by tests/store/test_adapters.py, with PIXELTABLE_HOME set: a Pixeltable round trip, then the
embedded Postgres is stopped."""

from __future__ import annotations

import json
import sys

import numpy as np
import pixeltable as pxt
import pixeltable.env

from curata import KMeans, add_to_pixeltable, cluster, select, table_from_pixeltable

if __name__ == "__main__":
    pxt.init()
    try:
        vectors = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
        ids = np.random.default_rng(1).permutation(1000) + 5  # ids that are not row positions
        t = pxt.create_table("vectors", {"id": pxt.Int, "emb": pxt.Array[(8,), pxt.Float], "label": pxt.Int})
        t.insert([{"id": int(ids[i]), "emb": vectors[i], "label": i % 4} for i in range(1000)])
        table = table_from_pixeltable(t, sys.argv[1], vector_column="emb", id_column="id", label_column="label")
        clusters = cluster(table, KMeans(6, seed=0))
        picked = select(table, 10, seed=0)
        add_to_pixeltable(t, "cluster", clusters[table.sample_ids()], id_column="id", ids=table.sample_ids())
        chosen = table.column("idx")[picked]
        add_to_pixeltable(t, "selected", np.ones(10, dtype=np.int64), id_column="id", ids=chosen, fill=0)
        back = t.select(t.id, t.emb, t.cluster, t.selected).order_by(t.id).collect()
        order = np.argsort(ids)
        print(
            json.dumps(
                {
                    "rows": len(table),
                    "vectors_equal": bool(np.array_equal(np.stack(back["emb"]), vectors[order])),
                    "table_vectors_equal": bool(np.array_equal(table.vectors(), vectors[order])),
                    "clusters_equal": back["cluster"] == clusters[np.sort(ids)].tolist(),
                    "selected": sorted(int(i) for i, s in zip(back["id"], back["selected"]) if s == 1),
                    "chosen": sorted(int(i) for i in chosen),
                }
            )
        )
    finally:
        server = pixeltable.env.Env.get()._db_server
        server.cleanup_mode = "stop"  # Pixeltable leaves its embedded Postgres running; stop it
        server.cleanup()
