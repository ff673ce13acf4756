#!/usr/bin/env bash
# Every GPU check in one run, and the only way GPU figures get into the repository: on one GPU machine, in under
# 8 minutes (the timeouts below add up to 475 s), it runs the unit tests that touch CUDA paths, the throughput and
# peer benchmarks, the headline recipe and every chapter in full mode in parallel, then writes gpu_check.json
# (machine, date, command, each step, each chapter's cells done and seconds, the measured runs that
# sdkit.book.cost fits its GPU model to) and gpu_check.md (the summary table), each step's result as it ends.
#
#   bash benchmarks/gpu_check.sh             -> benchmarks/results/ (or $OUT): gpu_*.json, gpu_check.md, gpu_check.log
#   bash benchmarks/gpu_check.sh --dry-run   -> the same code paths on the CPU, tiny sizes, into a temporary folder
#
# It installs nothing. The GPU image has torch, torchvision, scikit-learn, matplotlib and pytest; bring nbclient,
# nbformat, ipykernel, ipywidgets (the chapters) and torchdistill (the peer benchmark) as wheels (the first step
# checks and says how), and Fashion-MNIST's four IDX .gz files in $SDKIT_DATA/fashion-mnist/ (default ./data).
set -uo pipefail
cd "$(dirname "$0")/.."

# the headline recipe (python -m sdkit run --dataset fashion-mnist ...); change it here only
HEADLINE_ARGS="--model resnet8 --width 1 --epochs 12 --batch-size 512 --lr 0.2 --generations 1"

dry=0
[[ "${1:-}" == "--dry-run" ]] && dry=1
export SDKIT_DATA="${SDKIT_DATA:-$PWD/data}" PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if (( dry )); then
  out="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-dry.XXXXXX")"  # never benchmarks/results/
  device=cpu mode=quick chapters="book/04_math.ipynb" dataset=fashion-mnist-sample
  tests="tests/test_cost.py"
  bench="--dataset digits --width 0.25 --train-size 300 --batch-size 64 --epochs 1"
  throughput_tasks="--tasks train"  # the tutorial loop's per-sample transforms are slow on a busy 2-core CPU
  headline="--train-size 500 --model cnn --width 0.25 --epochs 1 --batch-size 128 --generations 1"
else
  out="${OUT:-benchmarks/results}"
  device=cuda mode=full chapters="" dataset=fashion-mnist
  tests="tests/test_utils.py tests/test_train.py tests/test_step_ops.py tests/test_models.py tests/test_cost.py"
  bench="--train-size 20000 --epochs 2" throughput_tasks=""
  headline="$HEADLINE_ARGS"
  [[ -d "$SDKIT_DATA/fashion-mnist" ]] && headline="$headline --data-root $SDKIT_DATA/fashion-mnist"
fi
mkdir -p "$out"
log="$out/gpu_check.log"
check() { python benchmarks/gpu_check.py "$@"; }
# step NAME SECONDS COMMAND...: run COMMAND under its own timeout and record its status and wall time at once
# (the dry run gives every step three times its GPU limit: a shared 2-core CPU, not a GPU); a failed step is
# recorded, the run goes on, and the script exits non-zero at the end, so a dry run in CI cannot pass silently
failed=0
step() {
  local name=$1 limit=$(( $2 * (dry ? 3 : 1) )) start=$SECONDS rc
  shift 2
  echo "== $name (timeout ${limit} s): $*"
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  check step "$name" "$rc" $(( SECONDS - start )) --out "$out"
  echo "== $name: exit $rc after $(( SECONDS - start )) s"
  (( rc == 0 )) || failed=$(( failed + 1 ))
}
{
  echo "gpu_check: dry run $dry, device $device, results in $out"
  if ! check packages; then exit 2; fi
  if (( ! dry )) && ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device here; run with --dry-run to check the script on a CPU" >&2
    exit 2
  fi
  step tests 60 python -m pytest -q -p no:cacheprovider -x $tests -k "not resume"
  step throughput 60 python benchmarks/throughput.py --device "$device" $bench $throughput_tasks --out "$out/gpu_throughput.json"
  step peers 60 python benchmarks/peers.py --device "$device" $bench --threads 1 --out "$out/gpu_peers.json"
  step headline 70 python -m sdkit run --dataset "$dataset" $headline --device "$device" --no-progress \
    --out "$out/gpu_headline.json"
  step chapters 200 python benchmarks/gpu_check.py chapters --out "$out" --mode "$mode" --cell-timeout 150 \
    --timeout 180 $chapters
  step summary 20 python benchmarks/gpu_check.py summarize --out "$out" \
    --command "bash benchmarks/gpu_check.sh $*"
  echo "gpu_check: $failed step(s) failed"
  (( failed == 0 ))
} 2>&1 | tee "$log"
