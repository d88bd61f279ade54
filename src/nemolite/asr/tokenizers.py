"""ASR tokenizers: a character vocabulary (`EncDecCTCModel`) and SentencePiece (`EncDecCTCModelBPE`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class OutOfVocabularyError(ValueError):
    """Text with characters a character vocabulary does not have."""


class CharTokenizer:
    """Maps text to indices of `labels` and back; the CTC blank is index len(labels).

    Args:
        labels: the characters, in the decoder's class order (NeMo's `labels` / decoder
            `vocabulary`, usually " ", "a".."z", "'").
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._index = {c: i for i, c in enumerate(self.labels)}

    @property
    def vocab_size(self) -> int:
        return len(self.labels)

    def text_to_ids(self, text: str) -> list[int]:
        missing = sorted({c for c in text if c not in self._index})
        if missing:
            raise OutOfVocabularyError(
                f"characters {''.join(missing)!r} are not in the model's vocabulary "
                f"{''.join(self.labels)!r}"
            )
        return [self._index[c] for c in text]

    def ids_to_text(self, ids: Sequence[int]) -> str:
        return "".join(self.labels[i] for i in ids)


class SentencePieceASRTokenizer:
    """A SentencePiece model (NeMo's `tokenizer.type: bpe`); pieces in id order are the vocabulary."""

    def __init__(self, model_path: str | Path) -> None:
        import sentencepiece as spm

        self.model_path = Path(model_path)
        self._sp = spm.SentencePieceProcessor(model_file=str(model_path))

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    @property
    def vocabulary(self) -> list[str]:
        return [self._sp.id_to_piece(i) for i in range(self.vocab_size)]

    def text_to_ids(self, text: str) -> list[int]:
        return list(self._sp.encode_as_ids(text))

    def ids_to_text(self, ids: Sequence[int]) -> str:
        return str(self._sp.decode_ids([int(i) for i in ids]))


def train_sentencepiece(
    texts: Sequence[str], out_dir: str | Path, vocab_size: int, model_type: str = "bpe"
) -> Path:
    """Trains a SentencePiece model on `texts`; writes NeMo's layout (tokenizer.model, vocab.txt).

    Returns the directory, which holds `tokenizer.model`, `tokenizer.vocab` and `vocab.txt`.
    """
    import io
    import os
    import tempfile

    import sentencepiece as spm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    tmp = tempfile.NamedTemporaryFile(dir=out, delete=False, suffix=".tmp")
    tmp.write(model.getvalue())
    tmp.close()
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    scores = [processor.get_score(i) for i in range(processor.get_piece_size())]
    (out / "tokenizer.vocab").write_text("".join(f"{p}\t{s}\n" for p, s in zip(pieces, scores)))
    # NeMo's vocab.txt (create_spt_model): special pieces skipped, word-initial pieces lose the
    # boundary marker, the others become "##" continuations; a bare marker stays itself.
    vocab = []
    for p in pieces:
        if p in ("<s>", "</s>", "<pad>", "<unk>"):
            continue
        token = p[1:] if p.startswith("\u2581") else f"##{p}"
        vocab.append(token or p[0])
    (out / "vocab.txt").write_text("".join(f"{v}\n" for v in vocab))
    os.replace(tmp.name, out / "tokenizer.model")
    return out
