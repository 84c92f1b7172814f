#!/usr/bin/env bash
# The GPU checks (issue 15 item 7), never a test dependency: on a machine with CUDA,
#   1. the CUDA equality tests the suite skips on CPU,
#   2. AMP pretraining and fine-tuning steps through the workflow (config/test.yaml, device: cuda),
#   3. bench/epitome.py (the 512² self-epitomic LSR ratio among them) and bench/cromss.py on the GPU, each printing its ratios against its own baseline in the same run.
#     bench/gpu_check.sh [OUT_DIR]     (default gpu_check/; each step's output is kept there)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-gpu_check}")
python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check.sh: no CUDA device here")'
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpus.txt"

echo "== 1. CUDA equality tests"
python -m pytest -q -rs tests/epitome/test_model.py tests/test_device.py -k "cuda" | tee "$out/tests.txt"

echo "== 2. AMP pretraining and fine-tuning through the workflow"
wf="$out/workflow"
rm -rf "$wf" && mkdir -p "$wf"
cp -r Snakefile rules workflow_scripts config envs "$wf"/
printf 'device: cuda\n' > "$wf/config/gpu.yaml"
(cd "$wf" && python -m snakemake --cores 4 --configfile config/test.yaml config/gpu.yaml results/tables/pretraining.csv \
    && python -m snakemake --cores 4 --configfile config/test.yaml config/gpu.yaml --until finetune_row) 2>&1 \
    | tail -5 | tee "$out/workflow.txt"
grep -h "device\|cuda" "$wf"/logs/pretrain_encoder/*.log | head -5 | tee -a "$out/workflow.txt" || true

echo "== 3. benchmarks"
python bench/epitome.py 2>&1 | tee "$out/epitome.txt"
python bench/cromss.py --device cuda 2>&1 | tee "$out/cromss.txt"
echo "outputs in $out"
