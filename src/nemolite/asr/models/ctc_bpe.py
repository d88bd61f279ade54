"""`EncDecCTCModelBPE`: the CTC model over SentencePiece tokens (NeMo's `tokenizer.type: bpe`).

The tokenizer comes from the `.nemo` file's artifacts (`tokenizer.model_path: nemo:<name>`), or,
for a new model, from `tokenizer.dir` on disk (`tokenizer.model` in it, as `nemo asr tokenizer`
writes). Saving stores it as an artifact again, so the `.nemo` file is self-contained.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nemolite.asr import nemo_file
from nemolite.asr.models.ctc import EncDecCTCModel
from nemolite.asr.tokenizers import SentencePieceASRTokenizer
from nemolite.errors import DataFileError

# Tokenizer config keys that name files, and the artifact base names NeMo gives them.
_TOKENIZER_FILES = {
    "model_path": "tokenizer.model",
    "vocab_path": "vocab.txt",
    "spe_tokenizer_vocab": "tokenizer.vocab",
}


class EncDecCTCModelBPE(EncDecCTCModel):
    """CTC model whose vocabulary is a SentencePiece model (see `EncDecCTCModel` for arguments)."""

    def _setup_vocabulary(self) -> None:
        tok_cfg = self._cfg.get("tokenizer") or {}
        if tok_cfg.get("type", "bpe") != "bpe":
            raise DataFileError(
                self._source, f"tokenizer.type={tok_cfg.get('type')!r} is not supported", "use a bpe (SentencePiece) tokenizer"
            )
        self._collect_tokenizer_files(tok_cfg)
        model_bytes = self._artifacts[Path(tok_cfg["model_path"][len("nemo:") :]).name]
        # SentencePiece loads from a path; the bytes live in the model, the file only briefly.
        with tempfile.NamedTemporaryFile(suffix=".model") as handle:
            handle.write(model_bytes)
            handle.flush()
            self.tokenizer = SentencePieceASRTokenizer(handle.name)
        decoder = self._cfg.setdefault("decoder", {})
        decoder["vocabulary"] = self.tokenizer.vocabulary
        decoder["num_classes"] = self.tokenizer.vocab_size

    def _collect_tokenizer_files(self, tok_cfg: dict[str, Any]) -> None:
        """Makes every tokenizer file an artifact and points the config at it (`nemo:<name>`)."""
        for key, base in _TOKENIZER_FILES.items():
            ref = tok_cfg.get(key)
            if isinstance(ref, str) and ref.startswith("nemo:"):
                if Path(ref[5:]).name not in self._artifacts:
                    raise DataFileError(self._source, f"tokenizer.{key}={ref} is missing from the archive", "re-save the model")
                continue
            path = Path(ref) if ref else Path(tok_cfg.get("dir") or ".") / base
            if not path.is_file():
                if key == "model_path":
                    raise DataFileError(
                        path, "no SentencePiece model", "train one with `nemo asr tokenizer` and set tokenizer.dir"
                    )
                continue
            name = nemo_file.artifact_name(base)
            self._artifacts[name] = path.read_bytes()
            tok_cfg[key] = f"nemo:{name}"
        tok_cfg.setdefault("type", "bpe")
        self._cfg["tokenizer"] = tok_cfg
