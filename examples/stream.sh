#!/usr/bin/env bash
# The streaming RL loop (DESIGN.md, "Training loop shapes" 2): one long pipe, sampler and learner overlap.
#
#     MODEL=path/or/hub-name PROMPTS=prompts.jsonl STEPS=20 examples/stream.sh
#     MODEL=... DATASET=openai/gsm8k PRESET=gsm8k SPLIT=train STEPS=20 examples/stream.sh
#
# runs
#
#     er sample -m MODEL --watch CKPT --loop --limit STEPS*PROMPTS_PER_STEP ... \
#       | er score -r REWARD | er advantage -e ESTIMATOR --batch-groups PROMPTS_PER_STEP \
#       | er update -m MODEL --out CKPT --resume --batch-size PROMPTS_PER_STEP*G --save-every 1 \
#           --keep-last KEEP_LAST > METRICS
#
# `er update` writes CKPT/step-K after every step; `er sample --watch` switches to it between chunks
# of PROMPTS_PER_STEP prompts, and the behaviour log-probs in each record correct the lag. Only the
# KEEP_LAST newest checkpoints stay (default 2; KEEP_LAST= keeps all): an older one is removed once a
# newer one is complete, never `latest`'s target, and a sampler still loading a removed one moves on.
#
# Stopping: the sampler stops after STEPS*PROMPTS_PER_STEP prompts (--limit), every later stage ends
# when its input does, so the pipe takes STEPS steps (fewer when DYNAMIC_SAMPLING drops groups) and
# exits. The pipe runs in its own process group; on Ctrl-C, SIGTERM, or a stage failing, the whole
# group (vLLM helpers and torchrun ranks included) is terminated, so nothing is left running.
# Exit status: 0 when every stage succeeded, else the first failure's (pipefail); 130/143 on signals.
#
# Variables (environment), as in examples/stepwise/Makefile: MODEL, PROMPTS | DATASET [PRESET SPLIT],
# STEPS, G, PROMPTS_PER_STEP, MAX_TOKENS, TEMPERATURE, BACKEND, SEED, REWARD (space-separated
# NAME[:k=v]), SCORE_ARGS, ESTIMATOR, DYNAMIC_SAMPLING (1 = on), ADVANTAGE_ARGS, LOSS, LR, CLIP_LOW,
# CLIP_HIGH, KL_COEF, UPDATE_ARGS, SAMPLE_ARGS, TORCHRUN (e.g. "torchrun --nproc-per-node 8"),
# KEEP_LAST, ER (the er command), CKPT (checkpoint dir), METRICS (metrics file; default: stdout),
# SERVER (URL[,URL...] of running `er serve` servers: the sampler samples from them and moves them to
# each new checkpoint in place, instead of an engine of its own; BACKEND then does not apply).
# ALLOW_ZERO_SIGNAL (1: exit 0 even when every step had zero signal; see er update --help).
#
# Held-out evaluation while it trains: EVAL_EVERY=K with EVAL_PROMPTS=FILE (or EVAL_DATASET=, EVAL_PRESET=)
# runs examples/heldout.sh beside the pipe, in its own process group: every K-th checkpoint is sampled on
# the held-out prompts, scored and evaluated, its report appended with its step to EVAL_OUT (default
# heldout.jsonl beside CKPT); after the pipe ends it evaluates what is left, then the script exits.
# `er plot METRICS EVAL_OUT -o run.png` draws both. Keep KEEP_LAST large enough for the evaluator to
# catch up (a checkpoint removed first is skipped with a warning).
set -euo pipefail

: "${MODEL:?set MODEL=<model dir or Hub name>}"
STEPS=${STEPS:-20} G=${G:-8} PROMPTS_PER_STEP=${PROMPTS_PER_STEP:-16} MAX_TOKENS=${MAX_TOKENS:-1024}
TEMPERATURE=${TEMPERATURE:-1.0} BACKEND=${BACKEND:-auto} SEED=${SEED:-0}
REWARD=${REWARD:-dler:L_T=$MAX_TOKENS} ESTIMATOR=${ESTIMATOR:-grpo}
LOSS=${LOSS:-grpo} LR=${LR:-1e-6} CLIP_LOW=${CLIP_LOW:-0.2} CLIP_HIGH=${CLIP_HIGH:-0.28} KL_COEF=${KL_COEF:-0}
ER=${ER:-er} CKPT=${CKPT:-ckpt} METRICS=${METRICS:-/dev/stdout} KEEP_LAST=${KEEP_LAST-2}

if [[ -n "${DATASET:-}" ]]; then
  source=(--dataset "$DATASET" ${PRESET:+--preset "$PRESET"} ${SPLIT:+--split "$SPLIT"})
elif [[ -n "${PROMPTS:-}" ]]; then
  source=("$PROMPTS")
else
  echo "stream.sh: set PROMPTS=<prompt records> or DATASET=<name or file>" >&2; exit 2
fi
rewards=(); for r in $REWARD; do rewards+=(-r "$r"); done
if [[ -n "${SERVER:-}" ]]; then engine=(--server "$SERVER"); else engine=(--backend "$BACKEND"); fi
if [[ -n "${TORCHRUN:-}" ]]; then update=($TORCHRUN -m er.cli update); else update=($ER update); fi
mkdir -p "$CKPT"

# Job control gives the background pipe a process group of its own (leader: its first process).
set -m
$ER sample -m "$MODEL" --watch "$CKPT" "${source[@]}" --loop --limit $((STEPS * PROMPTS_PER_STEP)) \
    --chunk "$PROMPTS_PER_STEP" -n "$G" --max-tokens "$MAX_TOKENS" --temperature "$TEMPERATURE" \
    --seed "$SEED" "${engine[@]}" --logprobs ${SAMPLE_ARGS:-} -q \
  | $ER score "${rewards[@]}" ${SCORE_ARGS:-} -q \
  | $ER advantage -e "$ESTIMATOR" --batch-groups "$PROMPTS_PER_STEP" ${DYNAMIC_SAMPLING:+--dynamic-sampling} \
      ${ADVANTAGE_ARGS:-} -q \
  | "${update[@]}" -m "$MODEL" --out "$CKPT" --resume --loss "$LOSS" --lr "$LR" \
      --batch-size $((PROMPTS_PER_STEP * G)) --clip-low "$CLIP_LOW" --clip-high "$CLIP_HIGH" \
      --kl-coef "$KL_COEF" --seed "$SEED" --save-every 1 ${KEEP_LAST:+--keep-last "$KEEP_LAST"} \
      ${ALLOW_ZERO_SIGNAL:+--allow-zero-signal} ${UPDATE_ARGS:-} -q > "$METRICS" &
group=$(jobs -p %1)
heldout=
if [[ -n "${EVAL_EVERY:-}" ]]; then
  rm -f "$CKPT/.heldout-stop"
  CKPT="$CKPT" ER="$ER" STOP_FILE="$CKPT/.heldout-stop" "$(dirname "$0")/heldout.sh" &
  heldout=$(jobs -p %2)
fi
set +m

stop() {  # terminate every process of the group $1 (default: the pipe), then reap them
  local g=${1:-$group}
  kill -TERM -- "-$g" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
}
trap 'stop; [[ -z $heldout ]] || stop "$heldout"; exit 130' INT
trap 'stop; [[ -z $heldout ]] || stop "$heldout"; exit 143' TERM HUP

status=0
wait %1 || status=$?
stop  # stages that outlive a failed neighbour (e.g. a sampler blocked on a full pipe) end here too
if [[ -n $heldout ]]; then
  if [[ $status -eq 0 ]]; then
    touch "$CKPT/.heldout-stop"  # the evaluator finishes the checkpoints left, then exits
    wait "$heldout" || status=$?
  fi
  stop "$heldout"
fi
trap - INT TERM HUP
if [[ $status -eq 0 ]]; then
  echo "stream.sh: $STEPS x $PROMPTS_PER_STEP prompts x G=$G done; $CKPT/latest -> $(readlink "$CKPT/latest")" >&2
fi
exit $status
