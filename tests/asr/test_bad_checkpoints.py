"""Bad `.nemo` input: one line naming the file, the problem and the fix; nothing loaded."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from nemolite import asr
from nemolite.errors import DataFileError
from tests.asr.conftest import REFERENCE

CHAR = REFERENCE / "tiny_ctc_char.nemo"


def _rewrite(tmp_path: Path, edit) -> Path:
    """A copy of the reference char model with its config changed by `edit(config)`."""
    out = tmp_path / "edited.nemo"
    with tarfile.open(CHAR) as src, tarfile.open(out, "w:") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "./model_config.yaml":
                config = yaml.safe_load(data)
                edit(config)
                data = yaml.safe_dump(config).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def test_unsupported_model_type_names_it_and_lists_supported(tmp_path: Path) -> None:
    path = _rewrite(tmp_path, lambda c: c.update(target="nemo.collections.asr.models.rnnt_models.EncDecRNNTModel"))
    with pytest.raises(DataFileError) as err:
        asr.ASRModel.restore_from(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "EncDecRNNTModel" in message and "EncDecCTCModel, EncDecCTCModelBPE" in message


def test_unsupported_encoder_module_is_refused(tmp_path: Path) -> None:
    def edit(config: dict) -> None:
        config["encoder"]["_target_"] = "nemo.collections.asr.modules.ConvASREncoder"

    with pytest.raises(DataFileError, match="encoder._target_=.*ConvASREncoder.*supported modules"):
        asr.ASRModel.restore_from(_rewrite(tmp_path, edit))


def test_unsupported_encoder_option_is_refused_not_run_wrongly(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="self_attention_model='rel_pos_local_attn' is not supported"):
        asr.ASRModel.restore_from(_rewrite(tmp_path, lambda c: c["encoder"].update(self_attention_model="rel_pos_local_attn")))


@pytest.mark.parametrize("keep", [0.0, 0.0001, 0.05, 0.6, 0.97])
def test_truncated_or_corrupt_file(tmp_path: Path, keep: float) -> None:
    data = CHAR.read_bytes()
    path = tmp_path / "broken.nemo"
    path.write_bytes(data[: int(keep * len(data))] if keep else b"not a tar file at all")
    with pytest.raises(DataFileError) as err:
        asr.ASRModel.restore_from(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_weights_that_do_not_fit(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no such file"):
        asr.ASRModel.restore_from(tmp_path / "nope.nemo")
    bigger = _rewrite(tmp_path, lambda c: c["encoder"].update(n_layers=3))
    with pytest.raises(DataFileError, match="weights do not match.*missing keys"):
        asr.ASRModel.restore_from(bigger)


def test_loading_through_the_wrong_class_says_which_one(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="holds a EncDecCTCModel, not a EncDecCTCModelBPE"):
        asr.EncDecCTCModelBPE.restore_from(CHAR)
