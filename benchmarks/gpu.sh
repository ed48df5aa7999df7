#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md in one run, for a node with one CUDA GPU:
#
#     bash benchmarks/gpu.sh DATA [OUT]
#
# DATA: an extracted dataset (e.g. the sample clips, `teamnet extract --p-stride 4`); OUT
# (default ./gpu-results): one output and one log file per step. Steps: the card's two ceilings
# (a device copy, a bf16 matrix product), model_speed.py for TEAM-Net / TSN / CoViAR (the
# paper's batch 80, bf16, channels-last; TEAM-Net and CoViAR eager and compiled piece by piece,
# teamnet/compiled.py), predict_speed.py end to end (14 workers, the paper's model),
# train_speed.py (the real loader and model) with 6 and 12 loader workers, and `teamnet
# train` -> `evaluate` -> `train --resume` through the command line against the same run
# uninterrupted. A step that fails or runs past its limit is reported and the rest still
# run; at most about 8 minutes (the limits), about 4 before the compiled steps were added.
set -uo pipefail
DATA=${1:?usage: bash benchmarks/gpu.sh DATA [OUT]}
OUT=${2:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run it, keep its output, say how it ended
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    local status=$?
    echo "== $name: exit $status in $((SECONDS - start)) s"
    tail -c 1000 "$OUT/$name.out" | tr -s ' \n' ' '
    echo
    [ "$status" = 0 ] || tail -n 5 "$OUT/$name.err"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >"$OUT/gpu.txt"
step ceilings 60 "$PY" - <<'EOF'
import json, torch
from triton.testing import do_bench
x = torch.randn(2**30 // 2, device="cuda", dtype=torch.bfloat16)  # 1 GiB
y = torch.empty_like(x)
copy_ms = do_bench(lambda: y.copy_(x), return_mode="median")
a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
mm_ms = do_bench(lambda: a @ b, return_mode="median")
print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                  "copy_TB_per_s": 2 * x.numel() * 2 / copy_ms / 1e9,
                  "bf16_matmul_TFLOP_per_s": 2 * 8192**3 / mm_ms / 1e9}))
EOF
PAPER=(--batch 80 --infer-batch 32 --bf16 --channels-last --steps 20)
step model_tsn 90 "$PY" benchmarks/model_speed.py --model tsn "${PAPER[@]}"
for model in teamnet coviar; do  # eager, then compiled piece by piece (with compile times)
    step "model_$model" 200 "$PY" benchmarks/model_speed.py --model "$model" "${PAPER[@]}" \
        --compile
done
# predict end to end: 14 workers prepare clips, the paper's model scores 16 videos a step
step predict_speed 150 "$PY" benchmarks/predict_speed.py throughput --videos 64 \
    --workers 1 14 --arch resnet50 --size 224 --segments 25 --batch 16
for workers in 6 12; do
    step "train_speed_w$workers" 90 "$PY" benchmarks/train_speed.py --data "$DATA" --batch 80 \
        --workers "$workers" --clips 2400 --passes 1
done
RUN=$(mktemp -d)/run
SMALL=(--data "$DATA" --pretrained none --num-segments 4 --input-size 112 --batch-size 8
       --val-fraction 0 --workers 4 --lr-steps 3)
step cli_train 60 "$PY" cli.py train "${SMALL[@]}" --epochs 2 --output "$RUN"
step cli_evaluate 60 "$PY" cli.py evaluate --checkpoint "$RUN/best.pt" --json
step cli_resume 60 "$PY" cli.py train "${SMALL[@]}" --epochs 3 --output "$RUN" --resume
step cli_straight 60 "$PY" cli.py train "${SMALL[@]}" --epochs 3 --output "$RUN-straight"
cp "$RUN/metrics.jsonl" "$OUT/cli_metrics_resumed.jsonl"
cp "$RUN-straight/metrics.jsonl" "$OUT/cli_metrics_straight.jsonl"
