"""`ASRModel.from_pretrained(repo_id)` offline: a nemolite-written `.nemo` in a Hugging Face cache.

The cache is laid out as huggingface-hub writes it (`hub/models--org--name/refs/main` naming a
commit, `snapshots/<commit>/<file>.nemo`) under a temporary HF_HOME, and the model is loaded by
its repository id in a fresh interpreter with HF_HUB_OFFLINE=1 (huggingface-hub reads both
variables once, at import: they cannot be changed inside this test process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.asr.conftest import CLIPS, randomize, tiny_size

REPO_ID = "someorg/tiny-fastconformer-ctc"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

LOAD = """
import json, sys
import torch
from nemolite import asr
from nemolite.errors import ConfigError
model = asr.ASRModel.from_pretrained(sys.argv[1])
want = asr.ASRModel.restore_from(sys.argv[2]).state_dict()
got = model.state_dict()
same = sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)
try:
    asr.ASRModel.from_pretrained("someorg/not-in-the-cache")
    missing = "loaded"
except ConfigError as exc:
    missing = str(exc)
print(json.dumps({"type": type(model).__name__, "same": same, "text": model.transcribe(sys.argv[3:]),
                  "missing": missing}))
"""


def _hub_cache(home: Path, nemo: Path) -> Path:
    repo = home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    target = snapshot / "tiny_fastconformer_ctc.nemo"
    target.write_bytes(nemo.read_bytes())
    return target


def test_from_pretrained_loads_a_cached_nemo_offline(tmp_path: Path) -> None:
    from nemolite import asr
    from nemolite.asr.models.fastconformer import CHAR_LABELS, fastconformer_ctc_config

    model = asr.EncDecCTCModel(fastconformer_ctc_config(tiny_size(), labels=CHAR_LABELS))
    randomize(model, seed=7)
    model.eval()
    written = model.save_to(tmp_path / "written.nemo")
    _hub_cache(tmp_path / "hf", written)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", LOAD, REPO_ID, str(written), *map(str, CLIPS[:2])],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["type"] == "EncDecCTCModel" and out["same"]
    assert out["text"] == model.transcribe([str(c) for c in CLIPS[:2]])
    assert "someorg/not-in-the-cache" in out["missing"] and "cannot fetch" in out["missing"]
