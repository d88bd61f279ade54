"""Generation throughput on CPU: nemolite's KV-cached `generate` vs transformers' `generate`, same weights.

A ~125M-parameter Llama (12 layers, hidden 768, GQA 12/4, vocab 32000), random, made by transformers
and imported with `llm.import_ckpt`. Greedy, 256 new tokens after a 32-token prompt, batch 1 and 8,
fp32, both in this process with the same torch threads; the best of `--repeats` runs each, the two
sides alternating. Time to
first token is the prefill plus the first decode step. EOS is ignored on both sides so every run
generates all 256 tokens.

    python benchmarks/generate.py [--new-tokens 256] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

VOCAB = 32000
CONFIG = dict(vocab_size=VOCAB, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
              num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=1024)
PROMPT = 32


def make_model(directory: Path):
    import torch
    import transformers
    from tokenizers import Tokenizer, models

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.LlamaConfig(**CONFIG)).eval()
    model.save_pretrained(directory)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, VOCAB)}
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                               unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.save_pretrained(directory)
    return model


class _NoEos:
    def __init__(self, tok) -> None:
        self._tok, self.eos_id = tok, None

    def __getattr__(self, name: str):
        return getattr(self._tok, name)


def time_nemolite(engine, prompts, new_tokens: int) -> tuple[float, float]:
    import torch

    from nemolite.llm.inference.params import CommonInferenceParams

    first: list[float] = []
    start = time.perf_counter()
    engine.generate(prompts.tolist(), CommonInferenceParams(temperature=0.0, num_tokens_to_generate=new_tokens),
                    generator=torch.Generator(), on_token=lambda row, tok: first or first.append(time.perf_counter()))
    return time.perf_counter() - start, first[0] - start


class _FirstToken:
    """transformers streamer: the first put() is the prompt, the second the first new token."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def put(self, value) -> None:
        self.calls.append(time.perf_counter())

    def end(self) -> None:
        pass


def time_transformers(model, prompts, new_tokens: int) -> tuple[float, float]:
    import torch

    streamer = _FirstToken()
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0,
                       streamer=streamer if prompts.shape[0] == 1 else None)
    total = time.perf_counter() - start
    return total, (streamer.calls[1] - start) if len(streamer.calls) > 1 else float("nan")


def main() -> None:
    import torch
    from _report import report

    from nemolite import llm
    from nemolite.llm.inference.generate import load_engine

    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = make_model(Path(tmp) / "hf")
        llm.import_ckpt(source=str(Path(tmp) / "hf"), output_path=str(Path(tmp) / "nemo"))
        engine = load_engine(Path(tmp) / "nemo")
        engine.tokenizer = _NoEos(engine.tokenizer)
        params = sum(p.numel() for p in reference.parameters()) / 1e6
        warm = torch.randint(3, VOCAB, (1, PROMPT), generator=torch.Generator().manual_seed(0))
        time_nemolite(engine, warm, 2), time_transformers(reference, warm, 2)  # first-call costs, both sides
        for batch in (1, 8):
            prompts = torch.randint(3, VOCAB, (batch, PROMPT), generator=torch.Generator().manual_seed(batch))
            # Alternating, so that a burst of load on a shared machine hits both sides alike.
            runs = [(time_nemolite(engine, prompts, args.new_tokens), time_transformers(reference, prompts,
                     args.new_tokens)) for _ in range(args.repeats)]
            ours, theirs = min(r[0] for r in runs), min(r[1] for r in runs)
            tokens = batch * args.new_tokens
            rows.append([str(batch), f"{tokens / ours[0]:.1f}", f"{tokens / theirs[0]:.1f}",
                         f"{theirs[0] / ours[0]:.2f}x", f"{ours[1] * 1000:.0f}", f"{theirs[1] * 1000:.0f}"])
    report("generate", f"Greedy generation, {params:.0f}M-parameter Llama, fp32 CPU, {args.new_tokens} new tokens",
           ["batch", "nemolite tok/s", "transformers tok/s", "speed-up", "nemolite TTFT ms", "transformers TTFT ms"],
           rows, notes=f"nemolite decode path: {engine.path}; torch threads: {torch.get_num_threads()}; "
           f"best of {args.repeats} after a warm-up call on each "
           f"side; same weights, same process; load average {load_at_start:.1f} at the start, "
           f"{os.getloadavg()[0]:.1f} at the end. "
           "transformers' TTFT is measured with its streamer (batch 1 only).")


if __name__ == "__main__":
    main()
