"""Checks a task's specs against each other before any process group starts or file is written.

`llm.pretrain` & co. call `check_task` inside the job (where the hardware is known), and the CLI
calls it before launching (where the hardware belongs to the cluster, so `on_this_machine` is
False for remote executors). Each check raises a one-line `ConfigError` naming the dotted field.
Everything here is light: specs only, no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError
from nemolite.lightning.strategy import MegatronStrategy, check_layout
from nemolite.lightning.trainer import Trainer, check_ranges, check_trainer, devices_per_node


def check_task(
    *,
    model: Any,
    data: Any,
    trainer: Trainer,
    log: Any = None,
    resume: Any = None,
    optim: Any = None,
    on_this_machine: bool = True,
    paths_here: bool | None = None,
) -> None:
    """Raises `ConfigError` if the task cannot run as configured.

    Args:
        model, data, trainer, log, resume, optim: the task's built specs.
        on_this_machine: the job runs here, so hardware checks (GPU present, device count) apply.
        paths_here: the task's paths are on this machine's filesystem (default: on_this_machine);
            a dry run of a local task checks them although it skips the hardware checks.
    """
    config = getattr(model, "config", None)
    check_ranges(trainer)
    if on_this_machine if paths_here is None else paths_here:
        check_paths(log=log, resume=resume)
    cuda = _cuda_present() if on_this_machine else True
    if on_this_machine:
        check_trainer(trainer, model_config=config, cuda=cuda)
    for prefix, spec in (("data", data), ("log", log), ("resume", resume), ("optim", optim)):
        validate = getattr(spec, "validate", None)
        if validate is not None:
            validate() if prefix == "data" else validate(prefix)
    if on_this_machine:
        from nemolite.llm.imported import check_restore

        check_restore(resume)  # nemo://<repo id> not imported: say which command imports it
    check_files = getattr(data, "check_files", None)
    if on_this_machine and check_files is not None:
        check_files()  # the data must be readable where the job runs, not where it is submitted
    strategy = trainer.strategy or MegatronStrategy()
    if not isinstance(strategy, MegatronStrategy):
        raise ConfigError("trainer.strategy", type(strategy).__name__, "LLM models run on megatron-core",
                          "use nl.MegatronStrategy(...) (DDPStrategy is for models that are not megatron's, e.g. ASR)")
    per_node = devices_per_node(trainer, cuda=cuda) if on_this_machine else _declared_devices(trainer)
    check_layout(
        strategy,
        model_config=config,
        world_size=trainer.num_nodes * per_node,
        global_batch_size=getattr(data, "global_batch_size", None),
        micro_batch_size=getattr(data, "micro_batch_size", None),
    )
    _check_sequence_length(config, data)
    _check_recompute_per_chunk(config, strategy)
    _check_rampup(data, strategy, trainer.num_nodes * per_node)


def _existing_non_directory(field: str, value: Any, fix: str) -> None:
    if value is not None and Path(str(value)).exists() and not Path(str(value)).is_dir():
        raise ConfigError(field, str(value), "is a file, not a directory", fix)


def check_paths(*, log: Any = None, resume: Any = None) -> None:
    """Directories the run writes to or reads checkpoints from are directories (or do not exist yet)."""
    if log is not None:
        for name in ("log_dir", "explicit_log_dir"):
            _existing_non_directory(f"log.{name}", getattr(log, name, None),
                                    f"point log.{name} at a directory (it is created if missing)")
        ckpt = getattr(log, "ckpt", None)
        _existing_non_directory("log.ckpt.dirpath", getattr(ckpt, "dirpath", None),
                                "point log.ckpt.dirpath at a directory (it is created if missing)")
    if resume is None:
        return
    _existing_non_directory("resume.resume_from_directory", getattr(resume, "resume_from_directory", None),
                            "point it at a run's checkpoints/ directory")
    restore = getattr(resume, "restore_config", None)
    restore_path = getattr(restore, "path", None)
    if isinstance(restore_path, str):
        from nemolite.lightning.exp_resume import resolve_restore_path

        restore_path = resolve_restore_path(restore_path)
    for field, value in (("resume.resume_from_path", getattr(resume, "resume_from_path", None)),
                         ("resume.restore_config.path", restore_path)):
        if value is not None and not Path(str(value)).is_dir():
            problem = "is a file, not a checkpoint directory" if Path(str(value)).exists() else "does not exist"
            raise ConfigError(field, str(value), problem,
                              "point it at a checkpoint directory (.../checkpoints/<name>-last)")


def _cuda_present() -> bool:
    from nemolite.backends.device import cuda_present

    return cuda_present()


def _declared_devices(trainer: Trainer) -> int:
    if isinstance(trainer.devices, int):
        return trainer.devices
    raise ConfigError(
        "trainer.devices", trainer.devices, "must be a number when launching on another machine",
        "set trainer.devices to the processes (GPUs) per node, e.g. trainer.devices=8",
    )


def _check_rampup(data: Any, strategy: MegatronStrategy, world_size: int) -> None:
    """Every batch of a ramp-up is whole micro-batches on each data-parallel rank (and, with an
    interleaved pipeline, a multiple of PP micro-batches, as the constant batch is)."""
    ramp = getattr(data, "rampup_batch_size", None)
    mbs = getattr(data, "micro_batch_size", None)
    if ramp is None or not isinstance(mbs, int):
        return
    from nemolite.llm.gpt.data.rampup import check_divisible

    dp = max(1, world_size // strategy.model_parallel_size)
    check_divisible(ramp, mbs * dp, f"micro_batch_size x data-parallel size ({mbs} x {dp})")
    if strategy.virtual_pipeline_model_parallel_size is not None:
        pp = strategy.pipeline_model_parallel_size
        check_divisible(ramp, mbs * dp * pp, f"micro_batch_size x DP x PP ({mbs} x {dp} x {pp}, "
                        "interleaved pipeline)")


def _check_sequence_length(config: Any, data: Any) -> None:
    model_len, data_len = getattr(config, "seq_length", None), getattr(data, "seq_length", None)
    if model_len is not None and data_len is not None and data_len > model_len:
        raise ConfigError(
            "data.seq_length", data_len, f"exceeds model.config.seq_length={model_len}",
            f"set data.seq_length<={model_len} or raise model.config.seq_length",
        )


def _check_recompute_per_chunk(config: Any, strategy: MegatronStrategy) -> None:
    """recompute_num_layers counts layers of one pipeline (virtual) chunk, as megatron applies it."""
    if config is None or getattr(config, "recompute_granularity", None) != "full":
        return
    from nemolite.llm.gpt.model.recompute import check_recompute

    chunks = strategy.pipeline_model_parallel_size * (strategy.virtual_pipeline_model_parallel_size or 1)
    check_recompute(config, layers_per_chunk=max(1, config.num_layers // chunks),
                    where=f"num_layers={config.num_layers} / (PP x VP = {chunks})")
