"""Tokenizers: byte, HF tokenizers, SentencePiece, AutoTokenizer errors, CLI factories."""

import json
import subprocess
import sys

import pytest

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.tokenizers import (
    AutoTokenizer,
    ByteTokenizer,
    HFTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
)

TEXT = "The quick brown fox jumps over the lazy dog. Naïve café, 東京! " * 3


def test_byte_tokenizer_round_trips_unicode_and_has_distinct_specials():
    tok = ByteTokenizer().build()
    assert isinstance(tok, Tokenizer)
    ids = tok.text_to_ids(TEXT)
    assert max(ids) < 256 and tok.ids_to_text(ids + [tok.eos_id]) == TEXT
    specials = {tok.pad_id, tok.bos_id, tok.eos_id}
    assert len(specials) == 3 and min(specials) >= 256 and tok.eod == tok.eos_id
    assert tok.vocab_size % 8 == 0 and tok.vocab_size > max(specials)
    assert ByteTokenizer(vocab_multiple=1).build().vocab_size == max(specials) + 1


def test_byte_chat_template_ends_assistant_turns_with_eos():
    tok = ByteTokenizer().build()
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"},
                                   {"role": "assistant", "content": "yo"}])
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.ids_to_text(ids) == "<|user|>\nhi\n<|assistant|>\nyo\n"


@pytest.fixture(scope="module")
def hf_tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tok = RustTokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    tok.decoder = __import__("tokenizers").decoders.ByteLevel()
    path = tmp_path_factory.mktemp("hf")
    tok.save(str(path / "tokenizer.json"))
    return path


def test_hf_tokenizer_loads_local_file_and_finds_specials(hf_tokenizer_dir):
    tok = HFTokenizer(path=str(hf_tokenizer_dir)).build()
    ids = tok.text_to_ids(TEXT)
    assert len(ids) < len(TEXT.encode())  # BPE merged something
    assert tok.ids_to_text(ids) == TEXT
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3) and tok.eod == 2
    chat = tok.apply_chat_template([{"role": "user", "content": "fox"}])
    assert chat[0] == tok.bos_id and "fox" in tok.ids_to_text(chat)


def test_hf_tokenizer_uses_chat_template_from_tokenizer_config(hf_tokenizer_dir, tmp_path):
    (tmp_path / "tokenizer.json").write_text((hf_tokenizer_dir / "tokenizer.json").read_text())
    template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{{ eos_token }}{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": template, "eos_token": "</s>", "bos_token": "<s>"}))
    tok = HFTokenizer(path=str(tmp_path)).build()
    ids = tok.apply_chat_template([{"role": "user", "content": "dog"}])
    assert ids[-1] == tok.eos_id and tok.ids_to_text(ids) == "[user]dog"


def test_hf_tokenizer_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(DataFileError) as err:
        HFTokenizer(path=str(bad)).build()
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataFileError, match="not found"):
        HFTokenizer(path=str(tmp_path / "missing.json")).build()


def test_sentencepiece_trains_loads_and_round_trips(tmp_path):
    import sentencepiece

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXT.split(". ")) * 50)
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=40,
        pad_id=3, minloglevel=2)
    tok = SentencePieceTokenizer(model_path=str(tmp_path / "sp.model")).build()
    ids = tok.text_to_ids("the lazy dog")
    assert tok.ids_to_text(ids) == "the lazy dog"
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3) and tok.vocab_size == 40
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(DataFileError) as err:
        SentencePieceTokenizer(model_path=str(bad)).build()
    assert str(bad) in str(err.value)


def test_auto_tokenizer_without_transformers_says_how_to_install(monkeypatch):
    # Runs whether or not transformers is installed: None in sys.modules makes `import
    # transformers` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"nemolite\[hf\]"):
        AutoTokenizer(pretrained_model_name="gpt2").build()


def test_auto_tokenizer_from_a_missing_directory_is_a_file_error():
    pytest.importorskip("transformers", reason="needs the hf extra (transformers)")
    with pytest.raises(DataFileError):
        AutoTokenizer(pretrained_model_name="/nonexistent/dir").build()


def test_cli_factories_resolve_by_name():
    import fiddle as fdl
    import nemo_run as run

    import nemolite.llm.tokenizers.factories  # noqa: F401
    from nemolite.llm.tokenizers import TokenizerSpec

    cfg = run.cli.resolve_factory(TokenizerSpec, "byte")()
    assert fdl.build(cfg).build().eod == 258
    cfg = run.cli.resolve_factory(TokenizerSpec, "hf")(path="x/tokenizer.json")
    assert fdl.build(cfg) == HFTokenizer(path="x/tokenizer.json")


def test_specs_import_nothing_heavy():
    # nemolite.llm itself may load torch through nemo_run; the specs must add nothing heavy.
    code = ("import sys, nemolite.llm; heavy = ('torch', 'numpy', 'lightning', 'megatron'); "
            "before = {m for m in heavy if m in sys.modules}; "
            "import nemolite.llm.tokenizers, nemolite.llm.gpt.data; "
            "from nemolite.llm.gpt.data import *; "
            "print(sorted({m for m in heavy if m in sys.modules} - before), "
            "sorted(m for m in ('lightning', 'megatron') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"
