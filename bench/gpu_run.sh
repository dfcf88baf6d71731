#!/usr/bin/env bash
# The GPU checks of issue 16 in one short run, for a machine with a CUDA GPU: the CUDA tests, the k-means grid on
# the GPU (with the share of the card's fp32 and tf32 peak) and the streamed 10M-row tree. Wheels for packages the
# machine lacks (pylance) may lie in .whl/; logs go to $OUT (default runs/gpu).
#
#     bash bench/gpu_run.sh
set -u
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, lance; print('torch', torch.__version__, '| lance', lance.__version__)"
    nproc
} 2>&1 | tee "$OUT/machine.txt"
echo "== CUDA tests"
timeout 80 python3 -m pytest -q -p no:cacheprovider tests/clustering/test_cuda.py \
    "tests/clustering/test_kmeans.py::test_cuda_matches_cpu" 2>&1 | tail -15 | tee "$OUT/tests.txt"
echo "== k-means grid on the GPU"
timeout 120 python3 bench/kmeans_grid.py --device cuda --rows 100000 1000000 --dims 64 384 1024 \
    --ks 100 1000 10000 --repeats 3 --cell-seconds 15 2>&1 | tee "$OUT/grid.txt"
echo "== streamed 10M-row tree"
timeout 150 python3 bench/scale.py --device cuda --rows 10000000 --dim 128 --budget-gib 4 --curate 1000000 \
    2>&1 | tee "$OUT/scale.txt"
