#!/usr/bin/env bash
# The paper's ablations on the bundled starter model and demo data, as `adapter-studio sweep`s: adapted layers
# L = 1, 2, 4 (all of its layers) crossed with zero-init vs random-init gates and prompts, and the amount of
# data (10%, 30%, 100% of the 2,700 training instructions, nested subsets). Every run trains with the starter
# table's adapter recipe (docs/EVALUATION.md) and is evaluated on the 150 held-out questions. Tables and plots
# go to bench/results/sweep-layers-init/ and bench/results/sweep-data/. About 15-20 minutes on 2 cores.
#
#   bash bench/sweeps-starter.sh [WORKSPACE]     (default: a fresh temporary workspace)
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-$(mktemp -d)/workspace}"
S=assets/starter
cli() { node bin/adapter-studio.mjs "$@"; }
RECIPE=(--split train --method adapter --adapter-len 10 --lr 0.02 --epochs 3 --warmup-epochs 0.5 --batch-size 8 --accum-steps 1 --max-seq-len 128 --seed 0 --eval-split test --max-new-tokens 48)

[ -f dist/cli.mjs ] || npm run build
echo "workspace: $W"
cli dataset import "$S/demo-train.json" --name demo --split train --workspace "$W"
cli dataset import "$S/demo-test.json" --into demo --split test --workspace "$W"
cli sweep --workspace "$W" --model "$S/model" --dataset demo --name "layers x init" --vary adapterLayers=1,2,4 --vary init=zero,random "${RECIPE[@]}" --out bench/results/sweep-layers-init
cli sweep --workspace "$W" --model starter --dataset demo --name "data amount" --vary data.fraction=0.1,0.3,1 --adapter-layers 4 "${RECIPE[@]}" --out bench/results/sweep-data
