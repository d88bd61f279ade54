"""nemolite's FastConformer-CTC against NeMo 3.0's on CPU: training step time and featurizer throughput.

Goal (issue 12, "Speed"): nemolite at least 1.0x NeMo for both, measured side by side in one run.

- Training step: the same model (nemolite builds it, saves a `.nemo`, NeMo restores that file:
  same config, same weights), the same batch (the four reference clips of tests/asr/reference,
  three times over: 12 utterances, 32 s of audio, about the tiny recipe's 30 s batches), fp32, one
  process. A step is forward from waveforms (featurizer, SpecAugment, encoder, decoder), CTC loss,
  backward, gradient clipping at 1.0 and AdamW, a plain loop on each side (each model's own
  `forward` and `loss`). Warm-up steps are dropped; the median of the rest is reported.
- Featurizer: `AudioToMelSpectrogramPreprocessor` with the FastConformer settings, eval mode, on
  the same batch: seconds of audio per second (wall and CPU).

NeMo runs in its own virtual environment (nemolite never depends on it), as a subprocess of this
script that also loads nemolite (from this checkout's src) and the same `.nemo` into nemolite's
model: the two sides' featurizer passes and training steps alternate one by one in that process,
so that load from other processes hits both alike (this project's machines are shared):

    python benchmarks/asr_vs_nemo.py [--sizes tiny,small] [--steps 5] [--rounds 2]
        [--nemo-python /path/to/venv/bin/python]   # or NEMO_PYTHON; default ../nemo-ref-venv

(tools/nemo_reference/make_asr_reference.py's docstring shows how to make that venv.)
"""

from __future__ import annotations

import os

# One thread by default, as the other CPU benchmarks: on a shared machine a multi-threaded op waits
# for its slowest thread. Set OMP_NUM_THREADS to measure otherwise; both sides get the same.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT / "tests" / "asr" / "reference" / "audio"
REPEAT = 3  # the clips, three times over: 12 utterances, 32 s
LR, BETAS, WD, CLIP = 1e-3, (0.9, 0.98), 1e-3, 1.0
FEATURE_REPEATS = 10  # featurizer passes per round


# ---- the worker (NeMo's python) ---------------------------------------------------------------
def nemo_worker(nemo_path: str, batch_path: str, steps: int, warmup: int) -> None:
    """Both sides, in NeMo's python: one JSON line of step and featurizer times per side.

    NeMo's `ASRModel` and nemolite's restore the same `.nemo` in this one process (nemolite from
    this checkout's src: it needs only torch, lightning and sentencepiece, which NeMo's venv has),
    and their steps alternate one by one, so that load from other processes hits both alike.
    """
    import logging

    logging.disable(logging.WARNING)
    from nemo.collections.asr.models import ASRModel as NeMoASRModel
    from nemo.utils import logging as nemo_logging

    from nemolite.asr.models.base import ASRModel

    nemo_logging.setLevel(logging.ERROR)
    signal, lengths, targets, target_lengths = torch.load(batch_path)
    torch.manual_seed(0)
    theirs = NeMoASRModel.restore_from(nemo_path, map_location="cpu")
    ours = ASRModel.restore_from(nemo_path)
    sides = {
        "nemo": (theirs, lambda m: m.preprocessor(input_signal=signal, length=lengths),
                 lambda m, lp, el: m.loss(log_probs=lp, targets=targets, input_lengths=el, target_lengths=target_lengths)),
        "nemolite": (ours, lambda m: m.preprocessor(signal, lengths), lambda m, lp, el: m.loss(lp, targets, el, target_lengths)),
    }  # fmt: skip
    result: dict[str, Any] = {name: {"features": [], "step": []} for name in sides}
    with torch.no_grad():
        for rep in range(FEATURE_REPEATS + 1):
            for name, (model, featurize, _) in sides.items():
                model.preprocessor.eval()  # no dither
                wall, cpu = time.perf_counter(), time.process_time()
                featurize(model)
                if rep:  # the first pass is a warm-up
                    result[name]["features"].append((time.perf_counter() - wall, time.process_time() - cpu))
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=LR, betas=BETAS, weight_decay=WD) for name, (m, _, _) in sides.items()}
    for model, _, _ in sides.values():
        model.train()
    for i in range(warmup + steps):
        for name, (model, _, loss_of) in sides.items():
            params = list(model.parameters())
            wall, cpu = time.perf_counter(), time.process_time()
            optimizers[name].zero_grad(set_to_none=True)
            log_probs, enc_len, _ = model(input_signal=signal, input_signal_length=lengths)
            loss_of(model, log_probs, enc_len).backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP)
            optimizers[name].step()
            if i >= warmup:
                result[name]["step"].append((time.perf_counter() - wall, time.process_time() - cpu))
    result["params"] = sum(p.numel() for p in ours.parameters())
    print(json.dumps(result))


# ---- nemolite's side and the driver -------------------------------------------------------------
def make_batch(tokenizer: Any) -> tuple[torch.Tensor, ...]:
    import soundfile as sf

    texts = json.loads((CLIPS / "transcripts.json").read_text()) * REPEAT
    waves = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in sorted(CLIPS.glob("clip*.wav"))] * REPEAT
    lengths = torch.tensor([w.numel() for w in waves])
    signal = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        signal[i, : w.numel()] = w
    ids = [tokenizer.text_to_ids(t) for t in texts]
    target_lengths = torch.tensor([len(t) for t in ids])
    targets = torch.zeros(len(ids), int(target_lengths.max()), dtype=torch.long)
    for i, t in enumerate(ids):
        targets[i, : len(t)] = torch.tensor(t)
    return signal, lengths, targets, target_lengths


def build_model(size: str, workdir: Path) -> Any:
    """A FastConformer-CTC of `size` with a 128-piece BPE vocabulary (the tiny recipe's)."""
    from nemolite import asr
    from nemolite.asr.data.speech_set import VOCAB_SIZE, corpus_sentences
    from nemolite.asr.models.ctc_bpe import EncDecCTCModelBPE
    from nemolite.asr.tokenizers import train_sentencepiece

    tok = workdir / "tokenizer"
    if not (tok / "tokenizer.model").is_file():
        train_sentencepiece(corpus_sentences()[:2000], tok, vocab_size=VOCAB_SIZE)
    torch.manual_seed(0)
    cfg = asr.FastConformerCTC(size=size, lr=LR).config(max_steps=None, tokenizer_dir=str(tok))
    return EncDecCTCModelBPE(cfg)


def nemo_side(python: str, nemo_path: Path, batch_path: Path, steps: int, warmup: int) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--nemo-worker", str(nemo_path), str(batch_path), str(steps), str(warmup)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"NeMo's side failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def nemo_python(arg: str | None) -> str:
    python = arg or os.environ.get("NEMO_PYTHON") or str(ROOT.parent / "nemo-ref-venv" / "bin" / "python")
    if not Path(python).is_file():
        raise SystemExit(f"asr_vs_nemo: no NeMo python at {python}: make a venv with nemo_toolkit[asr]==3.0.0 "
                         "(tools/nemo_reference/make_asr_reference.py) and pass --nemo-python or set NEMO_PYTHON")  # fmt: skip
    # find_spec, not an import: importing NeMo takes tens of seconds, the worker does it once.
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('nemo') is None)"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
        raise SystemExit(f"asr_vs_nemo: {python} has no nemo package: pip install 'nemo_toolkit[asr]==3.0.0' into that venv")
    return python


def median(times: list[tuple[float, float]], index: int) -> float:
    return statistics.median(t[index] for t in times)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--nemo-worker":
        nemo_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated FastConformer sizes (tiny, small, medium, large)")
    parser.add_argument("--steps", type=int, default=5, help="measured training steps per round and side")
    parser.add_argument("--warmup", type=int, default=2, help="training steps dropped at the start of each round")
    parser.add_argument("--rounds", type=int, default=2, help="worker processes (each alternates the two sides)")
    parser.add_argument("--nemo-python", help="python of a venv with nemo_toolkit[asr] (default: $NEMO_PYTHON or ../nemo-ref-venv)")
    args = parser.parse_args()
    python = nemo_python(args.nemo_python)
    sys.path.insert(0, str(Path(__file__).parent))
    from _report import report

    rows, notes = [], []
    audio_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in args.sizes.split(","):
            model = build_model(size, work)
            batch = make_batch(model.tokenizer)
            audio_seconds = float(batch[1].sum()) / model.sample_rate
            nemo_path, batch_path = work / f"{size}.nemo", work / f"{size}_batch.pt"
            model.save_to(nemo_path)
            torch.save(batch, batch_path)
            ours: dict[str, list] = {"step": [], "features": []}
            theirs: dict[str, list] = {"step": [], "features": []}
            for _ in range(args.rounds):
                got = nemo_side(python, nemo_path, batch_path, args.steps, args.warmup)
                for key in theirs:
                    theirs[key] += got["nemo"][key]
                    ours[key] += got["nemolite"][key]
            params = sum(p.numel() for p in model.parameters())
            for what, key in (("training step", "step"), ("featurizer", "features")):
                if key == "features" and size != args.sizes.split(",")[0]:
                    continue  # the featurizer is the same for every size: measured once
                for index, clock in ((0, "wall"), (1, "CPU")):
                    t_nemo, t_ours = median(theirs[key], index), median(ours[key], index)
                    if key == "step":
                        cells = [f"{t_nemo * 1000:.0f} ms", f"{t_ours * 1000:.0f} ms"]
                    else:
                        cells = [f"{audio_seconds / t_nemo:.0f} s/s", f"{audio_seconds / t_ours:.0f} s/s"]
                    label = f"{what}, FastConformer-CTC {size} ({params / 1e6:.1f} M)" if key == "step" else what
                    rows.append([label, clock, *cells, f"{t_nemo / t_ours:.2f}x"])
            notes.append(f"{size}: median of {len(ours['step'])} steps per side")
    report("asr_vs_nemo", "FastConformer-CTC on CPU: nemolite vs NeMo 3.0 (fp32, 1 process)",
           ["measure", "clock", "NeMo 3.0", "nemolite", "speed-up (NeMo time / nemolite time)"], rows,
           f"Batch: {REPEAT * 4} utterances, {audio_seconds:.1f} s of audio (tests/asr/reference clips); "
           f"{os.environ['OMP_NUM_THREADS']} thread(s); AdamW lr {LR}, clip {CLIP}; featurizer in eval mode "
           f"(seconds of audio per second, {FEATURE_REPEATS} passes per round); {args.rounds} worker process(es), the two sides "
           f"alternating step by step in each, {args.warmup} warm-up steps dropped; " + "; ".join(notes)
           + f". Goal: speed-up >= 1.0. Load average during the run: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
