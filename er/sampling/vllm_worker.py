"""The vLLM engine in a helper process: `python -m er.sampling.vllm_worker` (started by er.sampling.vllm).

vLLM's engine spawns processes of its own, which needs a `__main__`-guarded entry; running it here
also keeps `er sample`'s stdout clean (vLLM logs to stdout: this process moves fd 1 to stderr and
speaks its protocol on a private copy of the original stdout).

Protocol: one orjson line per message. Parent -> worker: `{"op": "init", ...LLM kwargs}`,
`{"op": "generate", "requests": [...], "temperature", "top_p", "logprobs"}`, `{"op": "reload", "path"}`,
`{"op": "adapter", "name", "id", "path", "remove"}` (add a LoRA adapter, generate with it from now on,
remove the adapter id `remove`), `{"op": "exit"}`.
Worker -> parent: `{"ok": true, ...}` or `{"error": "one line"}`; generate answers
`{"results": [[{"ids": [...], "lp": [...] | null, "finish": "stop"|"length"}, ...], ...]}`; reload answers
`{"ok": true, "seconds": s}`.

Reload (`er sample --watch`) swaps the weights in place: every worker's `reload_weights(weights_path=)`
through `LLM.collective_rpc` (vLLM 0.32's in-place reload, the engine and its compiled graphs stay), then
`reset_prefix_cache()`, since cached prefix KV blocks were computed with the old weights. On CPU, vLLM
0.32's reload leaves a stale copy behind: the LM head's GEMM kernel packs its weight once at load, and
with tied embeddings (SmolLM2, Qwen2-0.5B, Llama-3.2-1B) no checkpoint tensor reloads the head, so it kept
computing logits with the old embedding matrix while the rest of the model was new. `ReloadExtension`
(a vLLM `worker_extension_cls`) repacks every vocabulary embedding's kernel after the reload.

`LLM.generate` gets token-id prompts and one `SamplingParams(n, max_tokens, seed, logprobs=0,
stop_token_ids, skip_special_tokens=False, extra_args)` per request; vLLM gives sample k of a request
the seed `seed + k`. Stop scaling (reconstructed TS, see er.sampling.interventions) is the
`StopScaleProcessor` below, a vLLM v1 per-request logits processor enabled by
`extra_args["er_stop_scale"]`; it is not argmax-invariant, so vLLM applies it before temperature,
the same order as the transformers backend. Log-probs use vLLM's `logprobs_mode`
(`processed_logprobs` for `--logprobs-mode processed`, `raw_logprobs` for raw).
"""

from __future__ import annotations

import os
import sys
import traceback

try:  # importable without vLLM (the parent only needs the module path)
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor as _Adapter
except Exception:  # pragma: no cover - vLLM missing
    _Adapter = object  # type: ignore[assignment,misc]


class StopScaleProcessor(_Adapter):  # type: ignore[misc,valid-type]
    """Per request: z[token] += bias until `think_end` has been generated (reconstructed TS)."""

    @classmethod
    def validate_params(cls, params):
        return None

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params):
        spec = (params.extra_args or {}).get("er_stop_scale")
        if not spec:
            return None
        if isinstance(spec, str):  # over HTTP as a JSON object in a string
            import json

            spec = json.loads(spec)
        if isinstance(spec, (list, tuple)):  # over HTTP (vllm_xargs holds scalars and lists): stop_scale_xarg
            spec = {"token": spec[0], "bias": spec[1], "think_end": None if spec[2] < 0 else int(spec[2]),
                    "closed": bool(spec[3])}
        token, bias, think_end = int(spec["token"]), float(spec["bias"]), spec.get("think_end")
        state = {"seen": 0, "open": not spec.get("closed", False)}

        def apply(output_ids, logits):
            if state["open"] and think_end is not None:
                new = output_ids[state["seen"]:]
                state["seen"] = len(output_ids)
                if think_end in new:
                    state["open"] = False
            if state["open"]:
                logits[token] += bias
            return logits

        return apply


def stop_scale_xarg(token: int, bias: float, think_end: int | None, closed: bool) -> list:
    """`er_stop_scale` for a request's `vllm_xargs` (whose values must be scalars or lists, not a dict):
    [token, bias, think_end or -1, closed as 0/1]; StopScaleProcessor reads either form."""
    return [int(token), float(bias), -1 if think_end is None else int(think_end), int(bool(closed))]


class ReloadExtension:
    """Methods added to each vLLM worker (`worker_extension_cls`), called through `LLM.collective_rpc`."""

    def er_reload_weights(self, weights_path: str, step: str | None = None) -> None:
        self.reload_weights(weights_path=weights_path)  # type: ignore[attr-defined]
        repack_vocab_kernels(self.model_runner.get_model())  # type: ignore[attr-defined]
        self.er_step = int(step) if step is not None else None  # recorded only once the load succeeded

    def er_weights(self) -> dict:
        """Which checkpoint this worker holds (vLLM points model_config.model at a reloaded path), the step
        given with the last reload, and the model's shape (er.sampling.server_control reads it)."""
        from er.sampling.server_control import model_shape

        config = self.model_config  # type: ignore[attr-defined]
        return {"path": config.model, "step": getattr(self, "er_step", None), "logprobs_mode": config.logprobs_mode,
                **model_shape(config.hf_config.to_dict())}


def repack_vocab_kernels(model) -> int:
    """Rebuild the CPU GEMM kernels of the embedding/LM-head layers from their current weights.

    Those layers keep their weight (vLLM packs a copy for the CPU kernel: `cpu_linear`), so repacking
    after a reload is always safe; on GPUs there is no packed copy and nothing to do. Returns the count.
    """
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding

    n = 0
    for module in model.modules():
        if isinstance(module, VocabParallelEmbedding) and hasattr(module, "cpu_linear"):
            module.quant_method.process_weights_after_loading(module)
            n += 1
    return n


def _send(out, message: dict) -> None:
    import orjson

    out.write(orjson.dumps(message) + b"\n")
    out.flush()


def _results(outputs) -> list:
    res = []
    for ro in outputs:
        comps = []
        for o in sorted(ro.outputs, key=lambda c: c.index):
            lp = None
            if o.logprobs is not None:
                lp = [float(d[t].logprob) for t, d in zip(o.token_ids, o.logprobs)]
            finish = "stop" if o.finish_reason == "stop" else "length"
            comps.append({"ids": list(o.token_ids), "lp": lp, "finish": finish})
        res.append(comps)
    return res


def main() -> None:
    import orjson

    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # everything vLLM prints goes to stderr
    sys.stdout = sys.stderr
    proto_in = sys.stdin.buffer
    llm = None
    adapter = None  # the LoRARequest every generate carries (er update --lora checkpoints)
    for line in proto_in:
        msg = orjson.loads(line)
        op = msg.pop("op")
        try:
            if op == "exit":
                break
            if op == "init":
                from vllm import LLM

                llm = LLM(logits_processors=["er.sampling.vllm_worker:StopScaleProcessor"],
                          worker_extension_cls="er.sampling.vllm_worker.ReloadExtension", **msg)
                _send(proto_out, {"ok": True})
            elif op == "reload":
                import time

                t0 = time.perf_counter()
                llm.collective_rpc("er_reload_weights", kwargs={"weights_path": msg["path"]})
                llm.reset_prefix_cache()
                _send(proto_out, {"ok": True, "seconds": time.perf_counter() - t0})
            elif op == "adapter":
                import time

                from vllm.lora.request import LoRARequest

                t0 = time.perf_counter()
                request = LoRARequest(msg["name"], msg["id"], msg["path"])
                llm.llm_engine.add_lora(request)
                if msg.get("remove") is not None:
                    llm.llm_engine.remove_lora(msg["remove"])
                adapter = request
                _send(proto_out, {"ok": True, "seconds": time.perf_counter() - t0})
            elif op == "generate":
                from vllm import SamplingParams
                from vllm.inputs import TokensPrompt

                prompts, params = [], []
                for r in msg["requests"]:
                    prompts.append(TokensPrompt(prompt_token_ids=r["ids"]))
                    extra = {"er_stop_scale": r["stop_scale"]} if r.get("stop_scale") else None
                    params.append(SamplingParams(
                        n=r["n"], max_tokens=r["max_tokens"], seed=r["seed"], temperature=msg["temperature"],
                        top_p=msg["top_p"], logprobs=0 if msg["logprobs"] else None,
                        stop_token_ids=r.get("stop_ids") or None, skip_special_tokens=False, extra_args=extra))
                outputs = llm.generate(prompts, params, use_tqdm=False, lora_request=adapter)
                _send(proto_out, {"results": _results(outputs)})
            else:
                _send(proto_out, {"error": f"unknown op {op!r}"})
        except Exception as exc:  # report, keep serving
            traceback.print_exc()
            _send(proto_out, {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})


if __name__ == "__main__":
    main()
