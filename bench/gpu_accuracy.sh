#!/usr/bin/env bash
# The accuracy programme (issue #12) in one call, for a short GPU lease:
#   bash bench/gpu_accuracy.sh WORK_DIR          (on a lent GPU machine: bash bench/gpu_lease.sh)
# Steps run in priority order, each under its own time limit, all inside DEADLINE seconds if set:
# 1. the whole pipeline on the GPU recipe (members -> ensemble -> pseudo-label rounds -> distilled),
#    submissions for test.csv.gz and dig.csv.gz into WORK_DIR/pipeline/submissions and its table,
#    pipeline.md (dev accuracy and train seconds per stage: the GPU flagship's time is a member's);
# 2. the GPU flagship alone (the pipeline's seed-0 member), `affine` TTA: WORK_DIR/flagship_{test,dig}.csv;
# 3. dev-ranked grids (conf/hparams_search/dev_*.yaml, every arm 3 seeds): each writes its
#    leaderboard.md with an "Arms" table (dev/acc mean ± std) into WORK_DIR/grids/NAME;
# 4. the TTA view sets (bench/tta_views.py) on the pipeline's members: WORK_DIR/tta_views.json.
# Kept results go to bench/results/ as <what>_<machine>_<date>.<ext> (the JSON's meta names the
# machine and date), then `python bench/results_index.py` rewrites the index there.
# GRIDS picks and orders the grids; PIPELINE_TRAIN / SEEDS / ROUNDS set the pipeline's recipe (ROUNDS
# defaults to 2 here to leave the grids time; the pipeline's own default is 3); PIPELINE_OPTS adds pipeline options.
# Needs KMNIST_DATA. Smoke-test without a GPU (seconds per run):
#   EXTRA="trainer.accelerator=cpu trainer=default data.on_device=false speed.cuda_graph=false trainer.max_epochs=1
#          trainer.limit_train_batches=3 data.limit_rows=3840 data.val_writers=1 report=false" GRIDS=dev_width SEEDS=[0,1] \
#   ROUNDS=1 PIPELINE_OPTS="tta=none dig_file=null" bash bench/gpu_accuracy.sh /tmp/acc   (CPU TTA over 25k images is slow)
set -u
W=${1:?usage: bash bench/gpu_accuracy.sh WORK_DIR}
mkdir -p "$W"
export PYTHONUNBUFFERED=1 KMNIST_CACHE=${KMNIST_CACHE:-/tmp/kmnist-cache} PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
EXTRA=${EXTRA:-}
GRIDS=${GRIDS-dev_width dev_augment dev_schedule}   # GRIDS="" runs none
GRID_LIMIT=${GRID_LIMIT:-200}
PIPELINE_TRAIN=${PIPELINE_TRAIN:-experiment=best_gpu}
SEEDS=${SEEDS:-[0,1,2,3,4]}
STEP_TAIL=25
source "$(dirname "$0")/steps.sh"

# The pipeline's `train` list: the recipe plus EXTRA, each quoted for Hydra.
TRAIN="[$(for o in $PIPELINE_TRAIN trainer.enable_progress_bar=false $EXTRA; do printf "'%s'," "$o"; done | sed 's/,$//')]"
step pipeline 360 $PY -m kmnist.tasks.pipeline "train=$TRAIN" "seeds=$SEEDS" "pseudo_label.rounds=${ROUNDS:-2}" hydra.run.dir="$W/pipeline" \
  ${PIPELINE_OPTS:-}
cat "$W/pipeline/pipeline.md" 2>/dev/null

FLAGSHIP=$(ls "$W"/pipeline/members/0/checkpoints/last.ckpt 2>/dev/null)
if [ -n "$FLAGSHIP" ]; then
  step flagship 60 bash -c "
    $PY predict.py ckpt=$FLAGSHIP tta=affine output=$W/flagship_test.csv overwrite=true progress=false &&
    $PY predict.py ckpt=$FLAGSHIP tta=affine input=\$KMNIST_DATA/dig.csv.gz output=$W/flagship_dig.csv overwrite=true progress=false"
fi

for grid in $GRIDS; do
  step "grid_$grid" "$GRID_LIMIT" $PY train.py -m experiment=best_gpu hparams_search=$grid trainer.enable_progress_bar=false \
    hydra.sweep.dir="$W/grids/$grid" $EXTRA
done

step tta_views 90 $PY bench/tta_views.py "$W"/pipeline/members/*/checkpoints/last.ckpt --out "$W/tta_views.json"
echo "=== done $(date +%T)"
