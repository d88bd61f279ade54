"""`nemo asr ...` through the real CLI: recipes, dry run, transcribe, evaluate, tokenizer, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import fiddle as fdl
import pytest

from nemolite.cli import plugins
from tests.asr.conftest import CLIPS, REFERENCE, load_reference
from tests.conftest import run_nemo

ASR_RECIPES = plugins.recipe_names(plugins.ASR_RECIPE_GROUP)


def test_asr_recipes_are_their_own_group() -> None:
    assert ASR_RECIPES == [f"fastconformer_ctc_{s}" for s in ("large", "medium", "small", "tiny")]
    assert not set(ASR_RECIPES) & set(plugins.recipe_names())  # `nemo llm` does not list them


@pytest.mark.parametrize("name", ASR_RECIPES)
def test_every_asr_recipe_builds_validates_and_round_trips(name: str) -> None:
    from nemolite.asr.checks import check_asr_task
    from nemolite.llm.recipe_io import from_yaml, to_yaml

    recipe = plugins.recipe_module(name, group=plugins.ASR_RECIPE_GROUP).train_recipe(dir="/tmp/x", name="n")
    built = fdl.build(recipe)
    check_asr_task(dict(built.keywords), on_this_machine=False)
    assert fdl.build(from_yaml(to_yaml(recipe))).keywords["model"] == built.keywords["model"]


def test_train_dry_run_and_one_line_errors(tmp_path: Path) -> None:
    out = run_nemo("asr", "train", "--factory", "fastconformer_ctc_tiny", "model.size=huge", "--dryrun", "-y", cwd=tmp_path, timeout=600)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: model.size='huge': unknown value")
    assert "small" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = run_nemo("asr", "train", "--factory", "fastconformer_ctc_tiny", "--dryrun", "-y", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "nemolite.lightning.ddp_strategy.DDPStrategy" in out.stdout and "Dry run" in out.stdout
    assert not (tmp_path / "nemo_experiments").exists()


def test_transcribe_and_evaluate_a_nemo_made_model(tmp_path: Path) -> None:
    model = REFERENCE / "tiny_ctc_bpe.nemo"
    expected = load_reference("expected_bpe.pt")["transcripts"]
    out = run_nemo("asr", "transcribe", f"model={model}", f"audio={CLIPS[0].parent}",
                   f"output={tmp_path / 'pred.json'}", "-y", cwd=tmp_path, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    preds = [json.loads(line)["pred_text"] for line in (tmp_path / "pred.json").read_text().splitlines()]
    assert preds == expected
    # A manifest whose references are NeMo's own transcripts: WER 0; the spoken text: WER > 0.
    manifest = tmp_path / "m.json"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(c), "duration": 1.0, "text": t}) + "\n"
                                for c, t in zip(CLIPS, expected)))  # fmt: skip
    out = run_nemo("asr", "evaluate", f"model={model}", f"manifest={manifest}", "-y", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "WER 0.00%  CER 0.00%  (4 utterances)" in out.stdout and "per utterance" in out.stdout


def test_tokenizer_verb_writes_nemo_layout(tmp_path: Path) -> None:
    texts = json.loads((CLIPS[0].parent / "transcripts.json").read_text())
    manifest = tmp_path / "m.json"
    manifest.write_text("".join(json.dumps({"audio_filepath": "x.wav", "duration": 1, "text": t}) + "\n" for t in texts * 5))
    out = run_nemo("asr", "tokenizer", f"manifest={manifest}", "vocab_size=30", f"output_dir={tmp_path / 'tok'}", "-y", cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {"tokenizer.model", "tokenizer.vocab", "vocab.txt"}
    from nemolite.asr.tokenizers import SentencePieceASRTokenizer

    tok = SentencePieceASRTokenizer(tmp_path / "tok" / "tokenizer.model")
    assert tok.vocab_size == 30 and tok.ids_to_text(tok.text_to_ids(texts[0])) == texts[0]
