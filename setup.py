"""The one compiled part of curata: the scan around each k-means score GEMM (src/curata/clustering/_score_scan.c).

It is optional: where it does not build (no C compiler), curata.clustering.score_scan falls back to numpy and
torch calls that give the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "curata.clustering._score_scan",
            ["src/curata/clustering/_score_scan.c"],
            extra_compile_args=["-O3", "-ffp-contract=off"],  # no fused multiply-adds: the same roundings as torch
            optional=True,
        )
    ]
)
