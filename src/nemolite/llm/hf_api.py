"""`llm.import_ckpt` and `llm.export_ckpt` (`nemo llm import ...`, `nemo llm export ...`).

NeMo 2.0's names and signatures. Both check their arguments (and, on import, the source's
config.json against `model=`) before anything is written, and publish their output atomically.
`--dryrun` prints what would be read and written (`describe_import` / `describe_export`).

Plain functions, light to import: neither nemo-run nor torch comes with `llm.import_ckpt`, only
with the work (the converter imports torch). `nemolite.llm.api` makes them the `nemo llm import`
and `nemo llm export` verbs. No `from __future__ import annotations`: nemo-run's help and parser
read these signatures' annotations as objects.
"""

from pathlib import Path

from nemolite.errors import ConfigError
from nemolite.llm.gpt.model.base import GPTModel

TARGETS = ("hf", "hf-peft")


def import_ckpt(
    model: GPTModel | None = None,
    source: str = "",
    output_path: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Import a Hugging Face model (`hf://<repo id>`, `hf:///abs/dir` or a local directory).

    Writes nemolite's checkpoint (loads into any TP/PP/EP layout), the model config and the
    tokenizer under `output_path` (default `$NEMO_HOME/models/<repo id>`, restored as
    `nemo://<repo id>`).

    Args:
        model: the model to import into (e.g. `LlamaModel(Llama32Config1B())`); its config must
            agree with the source's. None: derived from the source's config.json.
        source: `hf://<org>/<name>`, `hf:///abs/dir` or a local directory with config.json and
            safetensors weights.
        output_path: where to write the imported model.
        overwrite: replace an existing `output_path`.

    Returns:
        The imported model's directory.
    """
    _check_import(source)
    from nemolite.llm.gpt.model.conversion.importer import import_hf

    return import_hf(model, source, output_path, overwrite)


def export_ckpt(
    path: str = "",
    target: str = "hf",
    output_path: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Export a nemolite checkpoint (`nemo://<repo id>`, an imported model or a run's checkpoint).

    Args:
        path: the checkpoint to export; any TP/PP/EP layout.
        target: "hf": a directory `AutoModelForCausalLM.from_pretrained` loads (a LoRA fine-tune's
            adapters merged in); "hf-peft": a LoRA fine-tune's adapters as a `peft` adapter
            directory (adapter_config.json + adapter_model.safetensors) for the base model.
        output_path: the directory to write.
        overwrite: replace an existing `output_path`.

    Returns:
        The exported directory.
    """
    _check_export(path, target, output_path)
    from nemolite.llm.gpt.model.conversion.exporter import export_hf

    assert output_path is not None  # checked above
    return export_hf(path, output_path, overwrite, target=target)


def _check_import(source: str) -> None:
    if not source:
        raise ConfigError("source", source, "no model to import",
                          "give source=hf://<org>/<name> or a local directory")


def _check_export(path: str, target: str, output_path: str | None) -> None:
    if not path:
        raise ConfigError("path", path, "no checkpoint to export", "give path=nemo://<repo id> or a checkpoint dir")
    if target not in TARGETS:
        from nemolite.errors import UnknownChoiceError

        raise UnknownChoiceError("target", target, TARGETS, what="export target")
    if not output_path:
        raise ConfigError("output_path", output_path, "no output directory", "give output_path=<dir>")


def describe_import(model: GPTModel | None = None, source: str = "", output_path: str | None = None,
                    overwrite: bool = False) -> str:
    """What `import_ckpt` would read and write (for `--dryrun`); touches no file, no network."""
    from nemolite.lightning import model_store as store
    from nemolite.llm.gpt.model.conversion import hf_source

    _check_import(source)
    repo_id, local = hf_source.parse(source)
    final = Path(output_path) if output_path else store.model_dir(hf_source.default_name(source))
    reads = f"the Hugging Face hub repo {repo_id} (through its cache)" if repo_id else f"the directory {local}"
    model_text = type(model.config).__name__ if model is not None else "derived from config.json"
    exists = " (exists: needs overwrite=True)" if final.exists() and not overwrite else ""
    return (f"would read: {reads}: config.json, *.safetensors, tokenizer files\n"
            f"model: {model_text}\n"
            f"would write: {final}{exists} (weights/ torch_dist checkpoint, context/ config and tokenizer),"
            f" restored as nemo://{hf_source.default_name(source)}")


def describe_export(path: str = "", target: str = "hf", output_path: str | None = None,
                    overwrite: bool = False) -> str:
    """What `export_ckpt` would read and write (for `--dryrun`)."""
    from nemolite.lightning import model_store as store

    _check_export(path, target, output_path)
    try:
        checkpoint = str(store.resolve_checkpoint(path, field="path"))
    except ConfigError as error:  # a dry run reports what is missing rather than failing
        checkpoint = f"{path} (missing: {error.fix})"
    exists = " (exists: needs overwrite=True)" if Path(str(output_path)).exists() and not overwrite else ""
    return (f"would read: the checkpoint {checkpoint}\n"
            f"would write: {output_path}{exists} (config.json, model*.safetensors, tokenizer files)")


import_ckpt.describe = describe_import  # type: ignore[attr-defined]
export_ckpt.describe = describe_export  # type: ignore[attr-defined]
