#!/usr/bin/env bash
# The whole device call of a GPU lease (15 minutes in all, at most 600 s a call), after
# `bash bench/gpu_prepare.sh` here:
#   run(command="bash bench/gpu_lease.sh", carry=[".whl", "data"], timeout_s=590)
# Installs the carried wheels where hydra is missing, runs bench/gpu_accuracy.sh inside DEADLINE
# seconds (default 540), and after every step packs what it wrote (no checkpoints, plots or
# probabilities) into $OUT/gpu_accuracy.tar.gz, so a call cut off still brings its finished steps back.
# Expected there: Hydra warns once per process that hydra_plugins.kmnist_sweepers.resumable_optuna cannot
# import (no Optuna sweeper on that image); only hparams_search=optuna needs it, and no step here uses it.
# Smoke-test here: OUT=/tmp/out DEADLINE=120 EXTRA="..." (as bench/gpu_accuracy.sh's header) bash bench/gpu_lease.sh
set -u
OUT=${OUT:?OUT: the folder whose files come back from the device machine}
PY=${PYTHON:-python3}
if ! $PY -c "import hydra, omegaconf" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KMNIST_DATA=${KMNIST_DATA:-$PWD/data/kannada_mnist} DEADLINE=${DEADLINE:-540}
W=${WORK:-/tmp/gpu_accuracy}
mkdir -p "$W"
$PY - <<'PY'
import torch, lightning, hydra, timm, torchmetrics
print("torch", torch.__version__, "lightning", lightning.__version__, "hydra", hydra.__version__, "timm", timm.__version__,
      "torchmetrics", torchmetrics.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
# Written beside, then renamed: a call killed mid-pack still returns the previous step's archive.
export AFTER_STEP="tar czf '$OUT/.pack.tar.gz' -C '$W' --exclude='*.ckpt' --exclude='*.npy' --exclude='*.png' --exclude=tensorboard \
  --exclude='pseudo_labels.csv.gz' . && mv '$OUT/.pack.tar.gz' '$OUT/gpu_accuracy.tar.gz' && ls -la '$OUT'"
# The steps' clock starts in gpu_accuracy.sh: what the install and checks above took comes off its deadline.
export DEADLINE=$((DEADLINE - SECONDS))
bash "$(dirname "$0")/gpu_accuracy.sh" "$W"
