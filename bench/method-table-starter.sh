#!/usr/bin/env bash
# The paper's method table on the bundled starter model and demo data: LLaMA-Adapter, LoRA and a full
# fine-tune trained on the same 2,700 demo instructions, then evaluated with the base model on the 150
# held-out questions. Every step is an `adapter-studio` command a user can type; docs/EVALUATION.md shows
# the table this printed. About 10-15 minutes on 2 cores.
#
#   bash bench/method-table-starter.sh [WORKSPACE]     (default: a fresh temporary workspace)
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-$(mktemp -d)/workspace}"
S=assets/starter
cli() { node bin/adapter-studio.mjs "$@"; }
# One recipe shape for all three (3 epochs, batch 8, 128 tokens, seed 0); each method keeps its own learning rate.
COMMON=(--split train --epochs 3 --warmup-epochs 0.5 --batch-size 8 --accum-steps 1 --max-seq-len 128 --seed 0)

[ -f dist/cli.mjs ] || npm run build
echo "workspace: $W"
cli dataset import "$S/demo-train.json" --name demo --split train --workspace "$W"
cli dataset import "$S/demo-test.json" --into demo --split test --workspace "$W"
cli train --workspace "$W" --model "$S/model" --dataset demo --name "LLaMA-Adapter" --method adapter --adapter-len 10 --adapter-layers 4 --lr 0.02 "${COMMON[@]}"
cli train --workspace "$W" --model starter --dataset demo --name "LoRA r8 q,v" --method lora --lora-rank 8 --lr 0.002 "${COMMON[@]}"
cli train --workspace "$W" --model starter --dataset demo --name "Full fine-tune" --method full --lr 0.0002 --weight-decay 0 "${COMMON[@]}"
cli eval --workspace "$W" --dataset demo --split test --name "starter held-out" --max-new-tokens 48
mkdir -p bench/results
cli compare --workspace "$W" --format markdown --out bench/results/method-table-starter.md --examples 5
cli compare --workspace "$W" --format csv --out bench/results/method-table-starter.csv
