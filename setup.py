"""The one compiled part of curata: the work around each k-means score GEMM (src/curata/clustering/_score_scan.c,
the Python bindings, with the kernels, the threaded pass over a shard and its thread team beside it).

It is optional: where it does not build (no C compiler), curata.clustering.score_scan falls back to numpy and
torch calls that give the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "curata.clustering._score_scan",
            [f"src/curata/clustering/{name}.c" for name in ("_score_scan", "_scan_kernels", "_scan_pass", "_thread_team")],
            depends=[f"src/curata/clustering/{name}.h" for name in ("_scan_kernels", "_scan_pass", "_thread_team")],
            # no fused multiply-adds where the code does not ask for them: the same roundings as torch
            extra_compile_args=["-O3", "-ffp-contract=off", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        )
    ]
)
