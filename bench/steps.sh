# Shared by the one-call GPU scripts: `step NAME SECONDS CMD...` runs CMD under its own time limit,
# logs to $W/NAME.log, prints the log's tail, the exit code and the seconds taken, then runs
# $AFTER_STEP (e.g. pack WORK_DIR). Needs W (the work folder); STEP_TAIL lines of log (default 14).
step() {
  local name=$1 limit=$2; shift 2
  echo "=== $(date +%T) $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  tail -n "${STEP_TAIL:-14}" "$W/$name.log"
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s"
  eval "${AFTER_STEP:-true}"
}
