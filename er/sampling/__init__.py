"""Sampling for `er sample`: backends (transformers: hf.py; vLLM: vllm.py + vllm_worker.py), prompt and
decoding interventions (interventions.py: HBPO budgets, L1/Ruler target length, TLDR levels and stop
scaling [reconstructed], adaptive long/short mode), the sampler (sampler.py), checkpoint following
for the streaming loop (policy.py) and the command's driver (run.py)."""
