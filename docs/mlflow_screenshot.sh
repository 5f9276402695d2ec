#!/usr/bin/env bash
# One-off, by hand: docs/mlflow_runs.png, what `logger=mlflow` gives. A 2-job sweep logs to a fresh
# MLflow store, `mlflow ui` serves it on 127.0.0.1, headless Chromium photographs the runs table,
# and the server is stopped by its pid. Needs `pip install -e ".[mlflow]"` and Debian's chromium.
#   bash docs/mlflow_screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=${PORT:-5055}

python train.py -m logger=mlflow model=dnn,cnn data.limit_rows=6000 data.val_writers=1 trainer.max_epochs=3 \
  trainer.accelerator=cpu trainer.enable_progress_bar=false paths.log_dir="$work" >"$work/sweep.log" 2>&1

# Its own process group: the server starts uvicorn workers and a job runner, stopped with it by its pid.
setsid mlflow ui --backend-store-uri "sqlite:///$work/mlflow/mlflow.db" --host 127.0.0.1 --port "$port" --workers 1 >"$work/ui.log" 2>&1 &
pid=$!
stop() {  # the whole group, then wait until its last process (uvicorn shuts down gracefully) is gone
  kill -- -"$pid" 2>/dev/null || return 0
  for _ in $(seq 30); do kill -0 -- -"$pid" 2>/dev/null || return 0; sleep 1; done
}
trap stop EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done

# The experiment's kind set, so the UI does not ask to confirm the one it guessed.
experiment=$(python -c "
import mlflow
client = mlflow.MlflowClient('sqlite:///$work/mlflow/mlflow.db')
experiment = client.get_experiment_by_name('kmnist').experiment_id
client.set_experiment_tag(experiment, 'mlflow.experimentKind', 'custom_model_development')
print(experiment)")
width=1900
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=$width,560 --virtual-time-budget=20000 \
  --screenshot="$work/shot.png" "http://127.0.0.1:$port/#/experiments/$experiment/runs" 2>/dev/null
# Cropped to the runs table (the right-hand panel is MLflow's assistant); a 64-colour palette keeps
# the PNG small (the page is flat UI colours).
python -c "
from PIL import Image
shot = Image.open('$work/shot.png').convert('RGB')
shot.crop((0, 0, $width - 495, shot.height)).quantize(64).save('docs/mlflow_runs.png', optimize=True)"
ls -l docs/mlflow_runs.png
