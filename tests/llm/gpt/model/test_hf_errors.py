"""Bad input to import/export: one line naming the field or file and the fix, a non-zero exit,
and nothing left under $NEMO_HOME or the output path. Plus the CLI verbs and their dry runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.llm.gpt.model import hf_models

pytest.importorskip("transformers")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "nemo_home"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny") / "tiny-qwen3"
    hf_models.make_hf_model("qwen3", directory, shard="200KB")
    return directory


@pytest.fixture
def cli(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`cli(*args)` -> (exit code, stdout, stderr) of `nemo llm <verb> ...`, in this process."""
    import typer
    from typer.testing import CliRunner

    from nemolite.llm import api  # noqa: I001 - registers the verbs (`llm.import_ckpt` is a plain function)

    app = typer.Typer()
    for verb in (api.import_ckpt, api.export_ckpt, api.finetune):
        verb.cli_entrypoint.cli(app)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "300"})
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _only_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def _nothing_under(path: Path) -> bool:
    return not path.exists() or not any(p for p in path.rglob("*") if p.is_file())


def test_cli_dryrun_then_import_then_export(cli: Any, tiny: Path, home: Path, tmp_path: Path) -> None:
    code, out, _ = cli("import", f"source=hf://{tiny}", "--dryrun")
    assert code == 0 and f"would write: {home / 'models' / 'tiny-qwen3'}" in out.replace("\n", "")
    assert "nemo://tiny-qwen3" in out and not home.exists()
    code, out, err = cli("import", f"source=hf://{tiny}", "-y")
    assert code == 0, err
    assert (home / "models" / "tiny-qwen3" / "weights" / "nemolite_ckpt.json").is_file()
    code, out, _ = cli("export", "path=nemo://tiny-qwen3", f"output_path={tmp_path / 'out'}", "--dryrun")
    assert code == 0 and "would read: the checkpoint" in out and not (tmp_path / "out").exists()
    code, _, err = cli("export", "path=nemo://tiny-qwen3", f"output_path={tmp_path / 'out'}", "-y")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["Qwen3ForCausalLM"]
    # Existing outputs are not replaced without overwrite=True.
    code, _, err = cli("import", f"source=hf://{tiny}", "-y")
    assert code == 2 and "already exists; fix: pass overwrite=True" in _only_error_line(err)
    code, _, err = cli("export", "path=nemo://tiny-qwen3", f"output_path={tmp_path / 'out'}", "-y")
    assert code == 2 and "output_path=" in _only_error_line(err)
    code, _, err = cli("import", f"source=hf://{tiny}", "overwrite=true", "-y")
    assert code == 0, err


def test_missing_import_names_the_command(cli: Any, home: Path, tmp_path: Path) -> None:
    code, _, err = cli("export", "path=nemo://meta-llama/Llama-3.2-1B", f"output_path={tmp_path / 'o'}", "-y")
    line = _only_error_line(err)
    assert code == 2 and "nemo llm import source=hf://meta-llama/Llama-3.2-1B -y" in line
    from nemolite.errors import ConfigError
    from nemolite.lightning.resume import AutoResume, RestoreConfig
    from nemolite.llm.imported import check_restore

    with pytest.raises(ConfigError, match=r"resume.restore_config.path='nemo://org/x'.*nemo llm import"):
        check_restore(AutoResume(restore_config=RestoreConfig(path="nemo://org/x")))


def test_offline_hub_source_is_one_line(cli: Any, home: Path) -> None:
    code, _, err = cli("import", "source=hf://no-such-org/no-such-model", "-y")
    assert code == 2 and "HF_HUB_OFFLINE" in _only_error_line(err)
    assert _nothing_under(home)


@pytest.mark.parametrize("damage", ["no_config", "truncated", "corrupt_header", "unsupported_rope",
                                    "sliding_window", "unknown_architecture", "extra_tensor", "wrong_shape",
                                    "mismatched_qkv"])
def test_bad_sources_leave_nothing(damage: str, tiny: Path, home: Path, tmp_path: Path) -> None:
    import shutil

    from nemolite import llm
    from nemolite.errors import NemoliteError

    src = tmp_path / "src"
    shutil.copytree(tiny, src)
    config = json.loads((src / "config.json").read_text())
    shard = sorted(src.glob("*.safetensors"))[-1]
    expect = {"no_config": "no config.json", "truncated": "truncated safetensors",
              "corrupt_header": "corrupt safetensors header",
              "unsupported_rope": "config.json.rope_scaling.rope_type='yarn': not supported",
              "sliding_window": "config.json.use_sliding_window=True: not supported",
              "unknown_architecture": "config.json.architectures='GPT2LMHeadModel': unknown architecture",
              "extra_tensor": "does not map", "wrong_shape": "does not fit",
              "mismatched_qkv": "does not fit"}[damage]
    if damage == "no_config":
        (src / "config.json").unlink()
    elif damage == "truncated":
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) - 100])
    elif damage == "corrupt_header":
        shard.write_bytes(b"\xff" * 8 + shard.read_bytes()[8:])
    elif damage == "unsupported_rope":
        config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
        config.pop("rope_parameters", None)
    elif damage == "sliding_window":
        config.update(use_sliding_window=True, sliding_window=8)
    elif damage == "unknown_architecture":
        config["architectures"] = ["GPT2LMHeadModel"]
    elif damage == "extra_tensor":
        import torch
        from safetensors.torch import save_file

        save_file({"model.layers.0.mlp.extra.weight": torch.zeros(2)}, str(src / "zz-extra.safetensors"))
    elif damage == "wrong_shape":  # the weights are not the model config.json describes
        config["intermediate_size"] *= 2
    elif damage == "mismatched_qkv":  # k's rows are right, its width is not q's
        from safetensors.torch import load_file, save_file

        name = "model.layers.1.self_attn.k_proj.weight"
        index = json.loads((src / "model.safetensors.index.json").read_text())
        path = src / index["weight_map"][name]
        tensors = load_file(str(path))
        tensors[name] = tensors[name][:, :-1].contiguous()
        save_file(tensors, str(path), metadata={"format": "pt"})
    (src / "config.json").write_text(json.dumps(config)) if damage != "no_config" else None
    with pytest.raises(NemoliteError) as err:
        llm.import_ckpt(source=str(src))
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert _nothing_under(home)


def test_export_of_a_path_without_checkpoint(home: Path, tmp_path: Path) -> None:
    from nemolite import llm
    from nemolite.errors import NemoliteError

    (tmp_path / "empty").mkdir()
    with pytest.raises(NemoliteError, match="not a complete nemolite checkpoint"):
        llm.export_ckpt(path=str(tmp_path / "empty"), output_path=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize("error,expect", [("GatedRepoError", "gated repository: access needs a token; "
                                           "fix: accept the license on huggingface.co and set HF_TOKEN"),
                                          ("RepositoryNotFoundError", "no such repository")])
def test_hub_refusals_are_one_line(error: str, expect: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub cannot be reached from tests: its refusal is raised where huggingface-hub raises it."""
    import httpx
    import huggingface_hub
    from huggingface_hub import errors

    from nemolite import llm
    from nemolite.errors import ConfigError

    response = httpx.Response(401 if error == "GatedRepoError" else 404,
                              request=httpx.Request("GET", "https://huggingface.co/api/models/x"))

    def refuse(repo_id: str, **kwargs: Any) -> str:
        raise getattr(errors, error)(f"{repo_id}: refused", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(ConfigError) as err:
        llm.import_ckpt(source="hf://meta-llama/Llama-3.2-1B")
    assert str(err.value).startswith("source='hf://meta-llama/Llama-3.2-1B': ") and expect in str(err.value)
    assert _nothing_under(home)
