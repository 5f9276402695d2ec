# Shared by the one-call GPU scripts: `step NAME SECONDS CMD...` runs CMD under its own time limit,
# logs to $W/NAME.log, prints the log's tail, the exit code and the seconds taken, then runs
# $AFTER_STEP (e.g. pack WORK_DIR). Needs W (the work folder); STEP_TAIL lines of log (default 14).
# DEADLINE (seconds since the script started, optional): a step's limit is cut to the time left, and a
# step is skipped when less than MIN_STEP (default 30) seconds are left, so the whole script ends
# inside one device call (at most 600 s) and packs what it has.
step() {
  local name=$1 limit=$2; shift 2
  if [ -n "${DEADLINE:-}" ]; then
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt "${MIN_STEP:-30}" ]; then
      echo "=== $name: skipped, ${left} s left before DEADLINE=${DEADLINE}"
      return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
  fi
  echo "=== $(date +%T) $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  tail -n "${STEP_TAIL:-14}" "$W/$name.log"
  echo "=== $name: rc=$rc in $((SECONDS - t0)) s"
  eval "${AFTER_STEP:-true}"
}
