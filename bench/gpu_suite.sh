#!/usr/bin/env bash
# Every GPU benchmark in one call, for a short GPU lease:  bash bench/gpu_suite.sh WORK_DIR
# Steps run in priority order, each under its own time limit, so one slow step cannot eat the
# rest; after each step WORK_DIR holds its JSON, logs, submissions and the flagship checkpoints.
# Needs KMNIST_DATA (train/test/dig .csv.gz). Prints one summary table per benchmark.
# Kept JSON goes to bench/results/ as <what>_<machine>_<date>.json (its meta names the machine and
# date; e.g. time_to_accuracy_best_gpu_h100_2026-11-26.json), then `python bench/results_index.py`.
set -u
W=${1:?usage: bash bench/gpu_suite.sh WORK_DIR}
mkdir -p "$W"/sub "$W"/ckpts
# bench/ scripts import kmnist from the repository root, installed or not
export PYTHONUNBUFFERED=1 KMNIST_CACHE=${KMNIST_CACHE:-/tmp/kmnist-cache} PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
# Smoke-test this script without a GPU: EXTRA="trainer.accelerator=cpu data.limit_rows=6000 ..." DEVICE=cpu
EXTRA=${EXTRA:-}
DEVICE=${DEVICE:-cuda}
AFTER_STEP=${AFTER_STEP:-true}   # a command run after every step (e.g. pack WORK_DIR)
source "$(dirname "$0")/steps.sh"

$PY - <<'PY'
import torch, lightning, hydra, timm, torchmetrics
print("torch", torch.__version__, "lightning", lightning.__version__, "hydra", hydra.__version__, "timm", timm.__version__,
      "torchmetrics", torchmetrics.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
from kmnist.data.io import read_digits  # warm the parse cache once
import os
for name in ("train", "test", "dig"):
    read_digits(os.path.join(os.environ["KMNIST_DATA"], f"{name}.csv.gz"))
PY

# 0. The CUDA-graph tests that skip without a GPU, and where a flagship step's time goes.
step gpu_tests 120 $PY -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py
step profile 60 $PY train.py experiment=best_gpu report=false trainer.enable_progress_bar=false trainer.max_epochs=3 \
  +callbacks.profile._target_=kmnist.callbacks.profiling.StepProfiler +callbacks.profile.start=60 +callbacks.profile.steps=30 hydra.run.dir="$W/profile" $EXTRA

# 1. The flagship GPU recipe, 3 seeds (3 held-out writer folds): time to 98.5% / 99.0%, full-run time.
step flagship 170 $PY bench/time_to_accuracy.py --experiment best_gpu --runs 3 --keep "$W/runs_best_gpu" --out "$W/time_to_accuracy_gpu.json" -- $EXTRA
CKPTS=$(ls "$W"/runs_best_gpu/seed*/checkpoints/epoch_*.ckpt 2>/dev/null | paste -sd, -)
i=0; for c in ${CKPTS//,/ }; do cp "$c" "$W/ckpts/best_gpu_seed$i.ckpt"; i=$((i+1)); done

# 2. Submissions: ensemble of the 3 + TTA (test, with pseudo-labels; Dig-MNIST), and one model alone.
if [ -n "$CKPTS" ]; then
  FIRST=${CKPTS%%,*}
  step predict 90 bash -c "
    $PY predict.py ckpt=[$CKPTS] tta=true output=$W/sub/test_ensemble3_tta.csv overwrite=true progress=false pseudo_label_threshold=0.85 &&
    $PY predict.py ckpt=[$CKPTS] tta=true input=\$KMNIST_DATA/dig.csv.gz output=$W/sub/dig_ensemble3_tta.csv overwrite=true progress=false &&
    $PY predict.py ckpt=$FIRST output=$W/sub/test_single.csv overwrite=true progress=false &&
    $PY predict.py ckpt=$FIRST tta=true input=\$KMNIST_DATA/dig.csv.gz output=$W/sub/dig_single_tta.csv overwrite=true progress=false"
fi

# 3. Pseudo-labelling, the second stage: seed 0 again (same held-out writers) plus confident test rows.
if [ -f "$W/sub/pseudo_labels.csv.gz" ]; then
  step pseudo 80 $PY bench/time_to_accuracy.py --experiment best_gpu --runs 1 --keep "$W/runs_pseudo" --out "$W/time_to_accuracy_gpu_pseudo.json" -- "data.extra_train=[$W/sub/pseudo_labels.csv.gz]" $EXTRA
fi

# 4. Network throughput, every architecture, NCHW and NHWC, batch 256 and 1024.
step throughput 110 $PY bench/throughput.py --device $DEVICE --batch-sizes 256,1024 --channels-last --seconds 0.4 --out "$W/throughput_gpu.json"

# 5. The smaller batch (slower, a little more accurate), and torch.compile, on the flagship.
step flagship_bs512 170 $PY bench/time_to_accuracy.py --experiment best_gpu --runs 3 --keep "$W/runs_bs512" --out "$W/time_to_accuracy_gpu_bs512.json" -- data.batch_size=512 optim.lr=0.006 $EXTRA
step flagship_compile 140 $PY bench/time_to_accuracy.py --experiment best_gpu --runs 1 --keep "$W/runs_compile" --out "$W/time_to_accuracy_gpu_compile.json" -- speed.compile=true speed.cuda_graph=false $EXTRA
step throughput_compile 100 $PY bench/throughput.py --device $DEVICE --models kresnet,cnn --batch-sizes 1024 --channels-last --compile --seconds 0.4 --out "$W/throughput_gpu_compile.json"
echo "=== done $(date +%T)"
