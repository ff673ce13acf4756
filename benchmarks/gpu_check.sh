#!/usr/bin/env bash
# Every GPU check in one run (meant for the device tool: one call, under 8 minutes). Installs nothing: the GPU
# image has torch, torchvision and scikit-learn; carry Fashion-MNIST's four IDX files in data/fashion-mnist/.
#   bash benchmarks/gpu_check.sh            -> writes $OUT (or benchmarks/results/) gpu_*.json and gpu_check.log
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" SDKIT_DATA="$PWD/data"
log="$out/gpu_check.log"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  echo "== tests that touch CUDA paths"
  timeout 150 python -m pytest -q -p no:cacheprovider tests/test_utils.py tests/test_train.py tests/test_step_ops.py -x -k "not resume" \
    || echo "TESTS FAILED"
  echo "== throughput: naive DataLoader loop vs sdkit, full Fashion-MNIST"
  timeout 150 python benchmarks/throughput.py --device cuda --train-size 54000 --epochs 2 --out "$out/gpu_throughput.json"
  echo "== Fashion-MNIST teacher + born-again student to full accuracy"
  timeout 200 python -m sdkit run --dataset fashion-mnist --data-root data/fashion-mnist --model resnet8 --width 1 \
    --epochs 12 --batch-size 512 --lr 0.2 --generations 1 --device cuda --no-progress --out "$out/gpu_born_again.json"
} 2>&1 | tee "$log"
