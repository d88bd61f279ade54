"""ASR models: `EncDecCTCModel` (characters) and `EncDecCTCModelBPE` (SentencePiece)."""
