#!/usr/bin/env bash
# Makes a separate virtual environment with NeMo itself (nemo_toolkit[asr]==3.0.0 on CPU torch), so
# that the slow pass also checks that NeMo restores the `.nemo` files nemolite writes with the same
# log-probs and transcripts (tests/asr/test_nemo_roundtrip.py). nemolite never depends on NeMo: this
# venv is separate and only its python's path reaches the tests (NEMOLITE_NEMO_PYTHON).
#
# Usage: bash .ci/nemo_venv.sh DIR   creates the venv DIR and prints DIR/bin/python on its last line
#        once NeMo's ASR collection imports there; exits non-zero otherwise, leaving nothing at DIR
#        (the venv is built at DIR.partial and renamed when it works; its bin/python is called by
#        path, which a rename keeps working).
set -euo pipefail
DIR="${1:?usage: bash .ci/nemo_venv.sh DIR}"
TMP="$DIR.partial"
rm -rf "$TMP" "$DIR"
python3 -m venv "$TMP"
"$TMP/bin/python" -m pip install --quiet --upgrade pip
# CPU torch first: the index's unpinned torch is a CUDA build of several GB.
"$TMP/bin/python" -m pip install --quiet torch==2.13.0
"$TMP/bin/python" -m pip install --quiet "nemo_toolkit[asr]==3.0.0" torch==2.13.0
"$TMP/bin/python" -c "import nemo.collections.asr" >/dev/null 2>&1
mv "$TMP" "$DIR"
echo "$DIR/bin/python"
