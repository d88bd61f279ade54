"""`ASRModel.from_pretrained(repo_id)` offline: a nemolite-written `.nemo` in a Hugging Face cache.

The cache is laid out as huggingface-hub writes it (`hub/models--org--name/refs/main` naming a
commit, `snapshots/<commit>/<file>.nemo`) under a temporary HF_HOME, with HF_HUB_OFFLINE=1.
huggingface-hub derives its cache path and offline flag from those variables once, at import
(`huggingface_hub.constants`), and reads the derived values at each call: the test sets both the
variables and the derived values, in this process (a fresh interpreter would spend ~10 s
importing Lightning again).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.asr.conftest import CLIPS, randomize, tiny_size

REPO_ID = "someorg/tiny-fastconformer-ctc"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(home: Path, nemo: Path) -> Path:
    repo = home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    target = snapshot / "tiny_fastconformer_ctc.nemo"
    target.write_bytes(nemo.read_bytes())
    return target


def test_from_pretrained_loads_a_cached_nemo_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from huggingface_hub import constants

    from nemolite import asr
    from nemolite.asr.models.fastconformer import CHAR_LABELS, fastconformer_ctc_config
    from nemolite.errors import ConfigError

    model = asr.EncDecCTCModel(fastconformer_ctc_config(tiny_size(), labels=CHAR_LABELS))
    randomize(model, seed=7)
    model.eval()
    cached = _hub_cache(tmp_path / "hf", model.save_to(tmp_path / "written.nemo"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    loaded = asr.ASRModel.from_pretrained(REPO_ID)
    assert type(loaded) is asr.EncDecCTCModel
    want, got = model.state_dict(), loaded.state_dict()
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
    clips = [str(c) for c in CLIPS[:2]]
    assert loaded.transcribe(clips) == model.transcribe(clips)
    cached.unlink()  # the cache now names a snapshot without the file: nothing else is fetched
    with pytest.raises(ConfigError, match="holds no .nemo file"):
        asr.ASRModel.from_pretrained(REPO_ID)
    with pytest.raises(ConfigError, match="someorg/not-in-the-cache.*cannot fetch"):
        asr.ASRModel.from_pretrained("someorg/not-in-the-cache")
