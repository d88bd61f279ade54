"""`Trainer` spec with Lightning/NeMo argument names, and `check_trainer` (hardware + option checks).

Light module: `Trainer.build()` imports Lightning in `megatron_trainer.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, UnknownChoiceError
from nemolite.lightning.ddp_strategy import DDPStrategy
from nemolite.lightning.precision import MegatronMixedPrecision
from nemolite.lightning.strategy import MegatronStrategy

if TYPE_CHECKING:
    from nemolite.llm.gpt.model.base import GPTConfig

ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


@dataclass(kw_only=True)
class Trainer:
    """A Lightning trainer that trains megatron-core models (NeMo's `nl.Trainer`).

    Attributes:
        accelerator: "gpu"/"cuda", "cpu" or "auto" (GPU when present).
        devices: processes per node (an int, or "auto" = all GPUs, or 1 on CPU).
        num_nodes: number of nodes.
        strategy: model parallelism (None = `MegatronStrategy()`), or `DDPStrategy()` for
            models that are not megatron-core's (ASR).
        plugins: megatron mixed precision, alone or in a list as NeMo passes it (None or [] = fp32).
        precision: Lightning precision ("32-true", "bf16-mixed", "16-mixed") with `DDPStrategy`;
            None = "32-true". Megatron models take `plugins` instead.
        callbacks: callback specs or Lightning callbacks.
        max_steps: optimizer steps to train (-1 = until max_epochs).
        max_epochs: epochs to train (None = until max_steps).
        min_steps: train at least this many steps.
        val_check_interval: validate every this many steps (int) or fraction of an epoch (float).
        check_val_every_n_epoch: validate every n epochs (None = by val_check_interval only).
        limit_val_batches: validation batches per validation run (int or fraction).
        limit_test_batches: test batches (int or fraction).
        log_every_n_steps: log metrics every n steps.
        num_sanity_val_steps: validation batches run before training.
        accumulate_grad_batches: batches per optimizer step with `DDPStrategy` (NeMo ASR's option);
            must stay 1 with megatron, which accumulates global/(micro x DP) micro-batches itself.
        use_distributed_sampler: must stay False: the data module shards by data-parallel rank.
        enable_checkpointing: let ModelCheckpoint callbacks save.
        enable_progress_bar: show the rich progress bar.
        enable_model_summary: print the parameter summary.
        gradient_clip_val: clip the gradient norm; applied by megatron's optimizer, so it must
            equal optim.config.clip_grad when both are set (None = use clip_grad).
        logger: let Lightning create its default logger (NeMoLogger normally sets loggers).
        default_root_dir: Lightning's root dir when no NeMoLogger is given.
        deterministic: torch deterministic algorithms.
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: MegatronStrategy | DDPStrategy | None = None
    plugins: MegatronMixedPrecision | list[MegatronMixedPrecision] | None = None
    precision: str | None = None
    callbacks: list[Any] = field(default_factory=list)
    max_steps: int = -1
    max_epochs: int | None = None
    min_steps: int | None = None
    val_check_interval: int | float | None = None
    check_val_every_n_epoch: int | None = None
    limit_val_batches: int | float | None = None
    limit_test_batches: int | float | None = None
    log_every_n_steps: int | None = None
    num_sanity_val_steps: int | None = None
    accumulate_grad_batches: int = 1
    use_distributed_sampler: bool = False
    enable_checkpointing: bool = True
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    gradient_clip_val: float | None = None
    logger: bool = False
    default_root_dir: str | None = None
    deterministic: bool = False

    def build(self, **kwargs: Any) -> Any:
        """Returns the heavy `lightning.pytorch.Trainer` with the megatron strategy."""
        from nemolite.lightning.megatron_trainer import build_trainer

        return build_trainer(self, **kwargs)

    def fit(self, model: Any, data: Any, **kwargs: Any) -> Any:
        """Trains `model` (a GPTModel spec) on `data` (a data spec); for notebooks.

        Returns the run directory, as `nemolite.llm.training.run_training` does.
        """
        from nemolite.llm.training import run_training

        return run_training(model=model, data=data, trainer=self, **kwargs)


def devices_per_node(trainer: Trainer, *, cuda: bool, gpu_count: int | None = None) -> int:
    """The number of processes per node `trainer.devices` means on this machine."""
    if isinstance(trainer.devices, int):
        return trainer.devices
    if trainer.devices != "auto":
        try:
            return int(trainer.devices)
        except ValueError:
            raise ConfigError(
                "trainer.devices", trainer.devices, "not an integer or 'auto'", "set trainer.devices=N"
            ) from None
    return (gpu_count or 1) if cuda else 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_error(field: str, value: Any, what: str, fix: str) -> ConfigError:
    return ConfigError(f"trainer.{field}", value, what, fix)


def check_ranges(trainer: Trainer) -> None:
    """Raises `ConfigError` for counts and intervals outside their range (any machine, any verb)."""
    if not _is_int(trainer.max_steps) or (trainer.max_steps < 1 and trainer.max_steps != -1):
        raise _range_error("max_steps", trainer.max_steps, "must be a positive number of steps (or -1: "
                           "until max_epochs)", "set trainer.max_steps=N with N >= 1")
    if trainer.max_epochs is not None and (not _is_int(trainer.max_epochs) or trainer.max_epochs < -1
                                           or trainer.max_epochs == 0):
        raise _range_error("max_epochs", trainer.max_epochs, "must be >= 1 (or -1/None: no limit)",
                           "set trainer.max_epochs=N with N >= 1")
    for name in ("num_nodes", "log_every_n_steps", "check_val_every_n_epoch"):
        value = getattr(trainer, name)
        if value is not None and (not _is_int(value) or value < 1):
            raise _range_error(name, value, "must be a whole number >= 1", f"set trainer.{name}=1 or more")
    if isinstance(trainer.devices, int) and trainer.devices < 1:
        raise _range_error("devices", trainer.devices, "must be >= 1 (processes per node)",
                           "set trainer.devices=1 or more, or 'auto'")
    if trainer.min_steps is not None and (not _is_int(trainer.min_steps) or trainer.min_steps < 0):
        raise _range_error("min_steps", trainer.min_steps, "must be >= 0", "set trainer.min_steps=0 or more")
    if trainer.num_sanity_val_steps is not None and trainer.num_sanity_val_steps < -1:
        raise _range_error("num_sanity_val_steps", trainer.num_sanity_val_steps, "must be >= -1",
                           "set trainer.num_sanity_val_steps=0 to skip the sanity check")
    _check_interval(trainer.val_check_interval)
    for name in ("limit_val_batches", "limit_test_batches"):
        _check_limit(name, getattr(trainer, name))


def _check_interval(value: Any) -> None:
    if value is None:
        return
    if _is_int(value) and value >= 1:
        return
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return
    raise _range_error("val_check_interval", value, "must be a number of steps >= 1 or a fraction of an "
                       "epoch in (0, 1]", "set trainer.val_check_interval=N (validate every N steps)")


def _check_limit(name: str, value: Any) -> None:
    if value is None or (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0):
        return
    raise _range_error(name, value, "must be a number of batches >= 0 or a fraction in [0, 1]",
                       f"set trainer.{name}=N (0 turns it off)")


def check_trainer(trainer: Trainer, *, model_config: GPTConfig | None, cuda: bool) -> None:
    """Raises `ConfigError` for options this machine or megatron cannot honour; imports nothing heavy.

    Args:
        trainer: the trainer spec.
        model_config: the model's config (None skips model feature checks).
        cuda: whether a CUDA GPU is present (see `nemolite.backends.device.cuda_present`).
    """
    check_ranges(trainer)
    if trainer.accelerator not in ACCELERATORS:
        raise UnknownChoiceError("trainer.accelerator", trainer.accelerator, ACCELERATORS)
    if trainer.accelerator in ("gpu", "cuda") and not cuda:
        raise ConfigError(
            "trainer.accelerator",
            trainer.accelerator,
            "this machine has no CUDA GPU",
            "run on a GPU node, or set trainer.accelerator=cpu (CPU training runs over gloo)",
        )
    if trainer.use_distributed_sampler:
        raise ConfigError(
            "trainer.use_distributed_sampler",
            True,
            "the data module shards batches by megatron's data-parallel rank",
            "set trainer.use_distributed_sampler=False",
        )
    if isinstance(trainer.strategy, DDPStrategy):
        _check_ddp(trainer)
        return
    if trainer.accumulate_grad_batches != 1:
        raise ConfigError(
            "trainer.accumulate_grad_batches",
            trainer.accumulate_grad_batches,
            "megatron accumulates global_batch_size / (micro_batch_size x DP) micro-batches itself",
            "set trainer.accumulate_grad_batches=1 and raise data.global_batch_size",
        )
    on_gpu = cuda and trainer.accelerator != "cpu"
    if trainer.precision is not None:
        raise ConfigError(
            "trainer.precision", trainer.precision, "megatron models take their precision from trainer.plugins",
            "unset trainer.precision and set trainer.plugins=bf16_mixed (or use trainer.strategy=DDPStrategy())",
        )
    precision = precision_plugin(trainer)
    if precision is not None:
        precision.validate(cuda=on_gpu)
    if not on_gpu:
        _check_cpu_strategy(trainer.strategy)
    if model_config is not None and not on_gpu:
        _check_cpu_model(model_config)


def precision_plugin(trainer: Trainer) -> MegatronMixedPrecision | None:
    """The trainer's mixed-precision plugin: `plugins` itself, or the one in the list NeMo passes."""

    plugins = trainer.plugins
    if plugins is None or isinstance(plugins, MegatronMixedPrecision):
        return plugins
    items = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    for i, item in enumerate(items):
        if not isinstance(item, MegatronMixedPrecision):
            raise ConfigError(f"trainer.plugins[{i}]", type(item).__name__,
                              "only megatron mixed-precision plugins are supported",
                              "use nl.MegatronMixedPrecision(...) (or bf16_mixed()/fp16_mixed())")
    if len(items) > 1:
        raise ConfigError("trainer.plugins", f"{len(items)} precision plugins", "give one precision plugin",
                          "keep one nl.MegatronMixedPrecision in trainer.plugins")
    return items[0] if items else None


def check_clip(trainer: Trainer, clip_grad: float | None) -> None:
    """Raises `ConfigError` when `trainer.gradient_clip_val` disagrees with `optim.config.clip_grad`.

    Lightning cannot clip under manual optimization; megatron's optimizer clips with `clip_grad`.
    """
    if trainer.gradient_clip_val is None or clip_grad is None:
        return
    if float(trainer.gradient_clip_val) != float(clip_grad):
        raise ConfigError(
            "trainer.gradient_clip_val",
            trainer.gradient_clip_val,
            f"differs from optim.config.clip_grad={clip_grad}, which megatron's optimizer applies",
            "set both to the same value, or leave trainer.gradient_clip_val=None",
        )


LIGHTNING_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true")


def _check_ddp(trainer: Trainer) -> None:
    assert isinstance(trainer.strategy, DDPStrategy)
    trainer.strategy.validate()
    if trainer.plugins:  # None or [] (NeMo's empty list) means none
        raise ConfigError(
            "trainer.plugins", type(trainer.plugins).__name__, "megatron precision needs the megatron strategy",
            "set trainer.precision=bf16-mixed with DDPStrategy instead",
        )
    if trainer.precision is not None and str(trainer.precision) not in LIGHTNING_PRECISIONS:
        raise UnknownChoiceError("trainer.precision", str(trainer.precision), LIGHTNING_PRECISIONS)
    if not _is_int(trainer.accumulate_grad_batches) or trainer.accumulate_grad_batches < 1:
        raise _range_error("accumulate_grad_batches", trainer.accumulate_grad_batches, "must be a whole number >= 1",
                           "set trainer.accumulate_grad_batches=1 or more")


def _check_cpu_strategy(strategy: MegatronStrategy | None) -> None:
    if strategy is not None and strategy.context_parallel_size > 1:
        raise ConfigError(
            "trainer.strategy.context_parallel_size",
            strategy.context_parallel_size,
            "context parallelism needs TransformerEngine attention on a CUDA GPU "
            "(megatron-core's local attention has no CP)",
            "set trainer.strategy.context_parallel_size=1 on CPU",
        )


def _check_cpu_model(cfg: GPTConfig) -> None:
    if cfg.transformer_layer_spec == "transformer_engine":
        raise ConfigError(
            "model.config.transformer_layer_spec",
            cfg.transformer_layer_spec,
            "TransformerEngine layers need a CUDA GPU",
            "set model.config.transformer_layer_spec=auto (megatron-core's local layers on CPU)",
        )
    if cfg.moe_grouped_gemm:
        raise ConfigError(
            "model.config.moe_grouped_gemm",
            True,
            "grouped GEMM experts need TransformerEngine or grouped_gemm on a CUDA GPU",
            "set model.config.moe_grouped_gemm=False on CPU",
        )
