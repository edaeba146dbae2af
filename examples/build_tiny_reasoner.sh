#!/usr/bin/env bash
# Rebuilds examples/tiny-reasoner, the starting model of `make demo`, with er's own commands:
#   er synth-tail (TAIL comparison traces, concise and full) -> er update --loss sft.
# Usage: examples/build_tiny_reasoner.sh [OUT_DIR]     (about 10 minutes on 2 CPU cores)
set -euo pipefail
out=${1:-examples/tiny-reasoner}
py=${PYTHON:-python}
er="$py -m er.cli"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. a randomly initialised ~0.8M-parameter Qwen2-style model and a BPE tokenizer trained here
$py -c "from er.tiny import build_tiny; build_tiny('$work/base', hidden_size=128, layers=4, heads=4, kv_heads=1, intermediate_size=384)"
# 2. SFT data: the same kind of problem with a concise trace and with the full TAIL trace, mixed
$er synth-tail --task compare --n 4000 --split short --with-trace --style concise --seed 1 -q > "$work/concise.jsonl"
$er synth-tail --task compare --n 4000 --split short --with-trace --style tail --seed 2 -q > "$work/tail.jsonl"
$py -c "
import random, sys
rows = open('$work/concise.jsonl').readlines() + open('$work/tail.jsonl').readlines()
random.Random(0).shuffle(rows)
open('$work/sft.jsonl', 'w').writelines(rows)"
# 3. three passes of SFT (the file given three times is three epochs, in order)
$er update -m "$work/base" --out "$work/sft" --loss sft --lr 2e-3 --warmup 20 --batch-size 64 -q \
  "$work/sft.jsonl" "$work/sft.jsonl" "$work/sft.jsonl" > "$work/metrics.jsonl"
rm -rf "$out" && mkdir -p "$out"
cp "$work"/sft/latest/{config.json,generation_config.json,model.safetensors,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$out"/ 2>/dev/null || cp -r "$work"/sft/latest/. "$out"/
tail -n 1 "$work/metrics.jsonl" > "$out/sft_last_step.json"
echo "wrote $out"
