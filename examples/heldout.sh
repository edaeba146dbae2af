#!/usr/bin/env bash
# Held-out evaluation of the checkpoints a training run writes, in a process of its own (so it never
# stalls the learner): for every EVAL_EVERY-th checkpoint CKPT/step-N that appears, sample the held-out
# prompts from it, score, `er eval`, and append the report with "step": N to EVAL_OUT.
#
#     CKPT=ckpt EVAL_PROMPTS=heldout.jsonl EVAL_EVERY=5 examples/heldout.sh &      # beside any training
#     CKPT=ckpt EVAL_DATASET=openai/gsm8k EVAL_PRESET=gsm8k EVAL_SPLIT=test EVAL_LIMIT=200 examples/heldout.sh
#     er plot runs/metrics.jsonl heldout.jsonl -o run.png    # held-out accuracy and length over the curves
#
# examples/stream.sh (EVAL_EVERY=K EVAL_PROMPTS=...) and examples/stepwise/Makefile (`make heldout`) run it.
#
# Stopping: it polls CKPT every POLL seconds until the file STOP_FILE exists (default CKPT/.heldout-stop),
# then evaluates what is left and exits; the trainer's recipe creates it when training ends. A checkpoint
# `--keep-last` removed before it was evaluated is skipped with a warning (raise KEEP_LAST to keep it);
# a checkpoint already in EVAL_OUT is not evaluated again, so a restarted watcher resumes.
#
# Variables (environment): CKPT, EVAL_PROMPTS | EVAL_DATASET [EVAL_PRESET EVAL_SPLIT], EVAL_EVERY (1),
# EVAL_LIMIT (prompts; all), EVAL_N (samples per prompt; 1), EVAL_MAX_TOKENS (1024), EVAL_TEMPERATURE
# (0 = greedy), EVAL_REWARD (math), EVAL_ARGS (more `er sample` flags, e.g. --server URL to share an
# `er serve`), EVAL_OUT (CKPT/../heldout.jsonl), BACKEND, SEED, POLL (2), STOP_FILE, ER.
set -uo pipefail

: "${CKPT:?set CKPT=<the checkpoint directory the trainer writes>}"
EVAL_EVERY=${EVAL_EVERY:-1} EVAL_N=${EVAL_N:-1} EVAL_MAX_TOKENS=${EVAL_MAX_TOKENS:-1024}
EVAL_TEMPERATURE=${EVAL_TEMPERATURE:-0} EVAL_REWARD=${EVAL_REWARD:-math} BACKEND=${BACKEND:-auto} SEED=${SEED:-0}
POLL=${POLL:-2} ER=${ER:-er} STOP_FILE=${STOP_FILE:-$CKPT/.heldout-stop}
EVAL_OUT=${EVAL_OUT:-$(dirname "$CKPT")/heldout.jsonl}

if [[ -n "${EVAL_DATASET:-}" ]]; then
  source=(--dataset "$EVAL_DATASET" ${EVAL_PRESET:+--preset "$EVAL_PRESET"} ${EVAL_SPLIT:+--split "$EVAL_SPLIT"})
elif [[ -n "${EVAL_PROMPTS:-}" ]]; then
  source=("$EVAL_PROMPTS")
else
  echo "heldout.sh: set EVAL_PROMPTS=<prompt records> or EVAL_DATASET=<name or file>" >&2; exit 2
fi
[[ "$EVAL_EVERY" =~ ^[1-9][0-9]*$ ]] || { echo "heldout.sh: EVAL_EVERY must be a positive integer" >&2; exit 2; }
rewards=(); for r in $EVAL_REWARD; do rewards+=(-r "$r"); done
mkdir -p "$CKPT"; touch "$EVAL_OUT"

done_steps() { grep -o '"step": *[0-9]*' "$EVAL_OUT" | grep -o '[0-9]*$'; }

# the scored rows go to a file named after the prompt set: er eval names a dataset after its file
# when the rows do not name it (a preset's rows do)
name=$(basename "${EVAL_DATASET:-$EVAL_PROMPTS}"); name=${name%%.*}

evaluate() {  # $1 = N: sample CKPT/step-N on the held-out prompts, score, eval, append with its step
  local n=$1 tmp dir
  tmp=$(mktemp "${EVAL_OUT}.XXXXXX"); dir=$(mktemp -d)
  if $ER sample -m "$CKPT/step-$n" "${source[@]}" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} -n "$EVAL_N" \
       --max-tokens "$EVAL_MAX_TOKENS" --temperature "$EVAL_TEMPERATURE" --seed "$SEED" --backend "$BACKEND" \
       ${EVAL_ARGS:-} -q \
     | $ER score "${rewards[@]}" -q > "$dir/$name.jsonl" && $ER eval "$dir/$name.jsonl" -q > "$tmp" \
     && [[ -s "$tmp" ]]; then
    sed "s/^{/{\"step\":$n,/" "$tmp" >> "$EVAL_OUT"
    echo "heldout.sh: step $n: $(grep -o '"accuracy":[^,]*' "$tmp" | head -1), $(grep -o '"mean_tokens":[^,]*' "$tmp" | head -1)" >&2
  elif [[ ! -d "$CKPT/step-$n" ]]; then
    echo "heldout.sh: warning: $CKPT/step-$n was removed before it was evaluated (raise KEEP_LAST)" >&2
  else
    echo "heldout.sh: warning: evaluating $CKPT/step-$n failed (see above); going on" >&2
  fi
  rm -rf "$tmp" "$dir"
}

trap 'exit 143' TERM INT HUP
declare -A seen=()
for s in $(done_steps); do seen[$s]=1; done
while :; do
  stopping=0; [[ -e "$STOP_FILE" ]] && stopping=1
  for d in $(ls -d "$CKPT"/step-* 2>/dev/null | sed 's/.*step-//' | grep -E '^[0-9]+$' | sort -n); do
    (( d % EVAL_EVERY == 0 )) || continue
    [[ -n "${seen[$d]:-}" ]] && continue
    seen[$d]=1
    evaluate "$d"
  done
  (( stopping )) && break
  sleep "$POLL"
done
rm -f "$STOP_FILE"
