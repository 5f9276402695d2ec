#!/usr/bin/env bash
# The accuracy programme (issue #12) in one call, for a short GPU lease:
#   bash bench/gpu_accuracy.sh WORK_DIR
# 1. dev-ranked grids (conf/hparams_search/dev_*.yaml, every arm 3 seeds): each writes its
#    leaderboard.md with an "Arms" table (dev/acc mean ± std) into WORK_DIR/grids/NAME;
# 2. the whole pipeline on the GPU recipe (members -> ensemble -> pseudo-labels -> distilled),
#    submissions for test.csv.gz and dig.csv.gz into WORK_DIR/pipeline/submissions;
# 3. the TTA view sets (bench/tta_views.py) on the pipeline's members: WORK_DIR/tta_views.json.
# Steps run in priority order, each under its own time limit. GRIDS picks and orders the grids;
# PIPELINE_TRAIN / SEEDS / ROUNDS set the pipeline's recipe (e.g. after a grid found a better arm; ROUNDS
# defaults to 1 here to fit the step's 400 s; the pipeline's own default is 3).
# Needs KMNIST_DATA. Smoke-test without a GPU (seconds per run):
#   EXTRA="trainer.accelerator=cpu trainer=default data.on_device=false speed.cuda_graph=false trainer.max_epochs=1
#          trainer.limit_train_batches=3 data.limit_rows=3840 data.val_writers=1 report=false" GRIDS=dev_width SEEDS=[0,1] \
#   bash bench/gpu_accuracy.sh /tmp/acc
set -u
W=${1:?usage: bash bench/gpu_accuracy.sh WORK_DIR}
mkdir -p "$W"
export PYTHONUNBUFFERED=1 KMNIST_CACHE=${KMNIST_CACHE:-/tmp/kmnist-cache} PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
EXTRA=${EXTRA:-}
GRIDS=${GRIDS:-dev_width dev_augment dev_schedule}
GRID_LIMIT=${GRID_LIMIT:-200}
PIPELINE_TRAIN=${PIPELINE_TRAIN:-experiment=best_gpu}
SEEDS=${SEEDS:-[0,1,2,3,4]}
STEP_TAIL=25
source "$(dirname "$0")/steps.sh"

for grid in $GRIDS; do
  step "grid_$grid" "$GRID_LIMIT" $PY train.py -m experiment=best_gpu hparams_search=$grid trainer.enable_progress_bar=false \
    hydra.sweep.dir="$W/grids/$grid" $EXTRA
done

# The pipeline's `train` list: the recipe plus EXTRA, each quoted for Hydra.
TRAIN="[$(for o in $PIPELINE_TRAIN trainer.enable_progress_bar=false $EXTRA; do printf "'%s'," "$o"; done | sed 's/,$//')]"
step pipeline 400 $PY -m kmnist.tasks.pipeline "train=$TRAIN" "seeds=$SEEDS" "pseudo_label.rounds=${ROUNDS:-1}" hydra.run.dir="$W/pipeline"
cat "$W/pipeline/pipeline.md" 2>/dev/null
step tta_views 120 $PY bench/tta_views.py "$W"/pipeline/members/*/checkpoints/last.ckpt --out "$W/tta_views.json"
echo "=== done $(date +%T)"
