#!/usr/bin/env bash
# Rebuilds examples/tiny-reasoner, the starting model of `make demo`, with er's own commands:
#   er synth-tail (TAIL comparison traces, concise and full) -> er update --loss sft.
# Usage: examples/build_tiny_reasoner.sh [OUT_DIR]     (about 5-10 minutes on 2 CPU cores)
set -euo pipefail
out=${1:-examples/tiny-reasoner}
py=${PYTHON:-python}
er="$py -m er.cli"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. a randomly initialised ~0.25M-parameter Qwen2-style model and a BPE tokenizer trained here
$py -c "from er.tiny import build_tiny; build_tiny('$work/base')"
# 2. SFT data: two-digit comparison problems, 2500 with a concise trace and 2500 with the full TAIL trace
for style in concise tail; do
  $er synth-tail --task compare --n 30000 --split short --with-trace --style $style --seed 11 -q \
    | $py "$here/tiny_task.py" 2500 > "$work/$style.jsonl"
done
$py -c "
import random
rows = open('$work/concise.jsonl').readlines() + open('$work/tail.jsonl').readlines()
random.Random(0).shuffle(rows)
open('$work/sft.jsonl', 'w').writelines(rows)"
# 3. four passes of SFT (the file given four times is four epochs, in order)
$er update -m "$work/base" --out "$work/sft" --loss sft --lr 3e-3 --warmup 20 --batch-size 64 -q \
  "$work/sft.jsonl" "$work/sft.jsonl" "$work/sft.jsonl" "$work/sft.jsonl" > "$work/metrics.jsonl"
rm -rf "$out" && mkdir -p "$out"
# No chat_template.jinja: the model is trained on raw text prompts, so `er sample` (which applies a
# tokenizer's chat template by default) must send it raw text.
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cp "$work/sft/latest/$f" "$out/"
done
tail -n 1 "$work/metrics.jsonl" > "$out/sft_last_step.json"
echo "wrote $out"
