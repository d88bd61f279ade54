"""Heavy: the Lightning strategy that runs megatron-core parallelism (built by `MegatronStrategy.build()`).

Subclasses Lightning's `DDPStrategy` for process-group setup and launching only; model wrapping
(megatron's DDP instead of torch's), optimizer setup and checkpointing (megatron dist-checkpointing)
are megatron's. Works over NCCL with CUDA and over gloo on CPU (with `nemolite.backends.cpu`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from megatron.core import parallel_state
from megatron.core.distributed import DistributedDataParallel as McoreDDP
from megatron.core.distributed import DistributedDataParallelConfig as McoreDDPConfig
from megatron.core.distributed import finalize_model_grads

from nemolite.errors import ConfigError
from nemolite.lightning import megatron_checkpoint as ckpt

if TYPE_CHECKING:
    from nemolite.lightning.strategy import MegatronStrategy

log = logging.getLogger(__name__)


def ddp_config(spec: MegatronStrategy, *, use_distributed_optimizer: bool, grad_reduce_in_fp32: bool) -> McoreDDPConfig:
    """megatron's DDP config from the strategy spec (`ddp="megatron"` = defaults)."""
    from nemolite.lightning.strategy import DistributedDataParallelConfig

    user = spec.ddp if isinstance(spec.ddp, DistributedDataParallelConfig) else DistributedDataParallelConfig(
        use_distributed_optimizer=use_distributed_optimizer, grad_reduce_in_fp32=grad_reduce_in_fp32
    )
    if user.use_distributed_optimizer != use_distributed_optimizer:
        raise ConfigError(
            "trainer.strategy.ddp.use_distributed_optimizer",
            user.use_distributed_optimizer,
            f"differs from optim.config.use_distributed_optimizer={use_distributed_optimizer}",
            "set both to the same value",
        )
    return McoreDDPConfig(
        grad_reduce_in_fp32=user.grad_reduce_in_fp32,
        overlap_grad_reduce=user.overlap_grad_reduce,
        overlap_param_gather=user.overlap_param_gather,
        align_param_gather=user.align_param_gather,
        use_distributed_optimizer=user.use_distributed_optimizer,
        check_for_nan_in_grad=user.check_for_nan_in_grad,
        bucket_size=user.bucket_size,
        average_in_collective=user.average_in_collective,
        num_distributed_optimizer_instances=user.num_distributed_optimizer_instances,
    )


class MegatronLightningStrategy(DDPStrategy):
    """Lightning strategy for megatron-core models (TP/PP/VP/CP/EP/DP, distributed optimizer)."""

    strategy_name = "nemolite_megatron"

    def __init__(self, spec: MegatronStrategy, **kwargs: Any) -> None:
        backend = spec.process_group_backend or ("nccl" if torch.cuda.is_available() else "gloo")
        super().__init__(
            process_group_backend=backend, timeout=timedelta(minutes=spec.timeout_minutes), **kwargs
        )
        self.spec = spec
        self._async_queue: Any = None
        self._pending_rng: dict[str, Any] | None = None

    @property
    def gpt_module(self) -> Any:
        """The LightningModule (a `MegatronGPTModule`: chunks, tf_config, optim, precision_spec)."""
        return self.lightning_module

    @property
    def restore_checkpoint_after_setup(self) -> bool:
        # Loading needs the built model and optimizer to know which shards this rank reads.
        return True

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        return {
            "num_replicas": parallel_state.get_data_parallel_world_size(),
            "rank": parallel_state.get_data_parallel_rank(),
        }

    def _configure_launcher(self) -> None:
        """No launcher for one process in a notebook: the run happens in the kernel's process.

        lightning/pytorch/trainer/connectors/accelerator_connector.py refuses any strategy whose
        launcher is not `is_interactive_compatible` inside Jupyter/IPython; DDP's script launcher
        would start no child for one process anyway (it only sets the rendezvous variables, which
        the process group's setup sets as well). Several processes still need a script
        (`executor=torchrun`, or `run.Experiment` with a `LocalExecutor`).
        """
        super()._configure_launcher()
        from lightning.fabric.utilities.imports import _IS_INTERACTIVE

        if _IS_INTERACTIVE and self.num_processes * self.num_nodes == 1:
            self._launcher = None

    def setup_distributed(self) -> None:
        """Starts the process group, patches megatron for CPU if needed, and initialises megatron's groups."""
        from nemolite.backends import megatron_version

        megatron_version.check()
        super().setup_distributed()
        from nemolite.lightning import fast_log

        fast_log.apply()  # self.log without Lightning's per-call state walk (see fast_log.py)
        if not torch.cuda.is_available():
            from nemolite.backends import cpu

            cpu.apply()
            cpu.set_cpu_threads(self.num_processes)
        if parallel_state.model_parallel_is_initialized():
            parallel_state.destroy_model_parallel()
        s = self.spec
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=s.tensor_model_parallel_size,
            pipeline_model_parallel_size=s.pipeline_model_parallel_size,
            virtual_pipeline_model_parallel_size=s.virtual_pipeline_model_parallel_size,
            context_parallel_size=s.context_parallel_size,
            expert_model_parallel_size=s.expert_model_parallel_size,
            expert_tensor_parallel_size=s.expert_tensor_parallel_size,
        )

    def setup(self, trainer: pl.Trainer) -> None:
        """Moves the model, wraps it in megatron DDP and builds the optimizer (when fitting).

        Unlike DDPStrategy.setup, module states are never broadcast from rank 0: TP/PP ranks hold
        different shards, and megatron initialised them consistently already.
        """
        assert self.accelerator is not None
        self.accelerator.setup(trainer)
        self.model_to_device()
        if trainer.state.fn == TrainerFn.FITTING:
            self.configure_ddp()
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()

    def model_to_device(self) -> None:
        if self.root_device.type == "cuda":
            self.gpt_module.to(self.root_device)

    def configure_ddp(self) -> None:
        """Wraps each chunk in megatron's DDP and wires grad sync into megatron's schedules."""
        module = self.gpt_module
        tf_config = module.tf_config
        optim = module.optim
        use_dist_opt = bool(optim and optim.config.use_distributed_optimizer)
        prec = module.precision_spec
        cfg = ddp_config(
            self.spec,
            use_distributed_optimizer=use_dist_opt,
            grad_reduce_in_fp32=bool(prec and prec.grad_reduce_in_fp32 and prec.dtype_name != "float32"),
        )
        wrapped = [
            # Only the first chunk gets buckets' bucketing; megatron-LM does the same for VP.
            McoreDDP(config=tf_config, ddp_config=cfg, module=chunk, disable_bucketing=i > 0)
            for i, chunk in enumerate(module.chunks)
        ]
        for chunk in wrapped:
            chunk.broadcast_params()
        module.chunks = torch.nn.ModuleList(wrapped)
        no_sync = [chunk.no_sync for chunk in wrapped]
        tf_config.no_sync_func = no_sync[0] if len(no_sync) == 1 else no_sync
        tf_config.finalize_model_grads_func = finalize_model_grads
        if cfg.overlap_grad_reduce:
            sync = [chunk.start_grad_sync for chunk in wrapped]
            tf_config.grad_sync_func = sync[0] if len(sync) == 1 else sync
        if cfg.overlap_param_gather and cfg.align_param_gather:
            sync = [chunk.start_param_sync for chunk in wrapped]
            tf_config.param_sync_func = sync[0] if len(sync) == 1 else sync

    def teardown(self) -> None:
        self.finalize_async_saves(blocking=True)
        super().teardown()

    # ---- checkpointing (megatron dist-checkpointing, torch_dist) ------------------------------
    def lightning_module_state_dict(self) -> dict[str, Any]:
        return self.gpt_module.sharded_state_dict()

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        return ckpt.optimizer_sharded_state_dict(optimizer, list(self.gpt_module.chunks))

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: str | Path, storage_options: Any = None
    ) -> None:
        """Saves on every rank (each writes its shards); rank 0 also writes the common part."""
        if not self.spec.ckpt_include_optimizer:
            checkpoint.pop("optimizer_states", None)
        checkpoint[ckpt.RNG_KEY] = ckpt.rng_sharded_object(ckpt.capture_rng_state())
        checkpoint[ckpt.RNG_LAYOUT_KEY] = ckpt.rng_layout()
        self.finalize_async_saves(blocking=False)
        options = storage_options if isinstance(storage_options, dict) else {}
        async_save = self.spec.ckpt_async_save or bool(options.get("async_save", False))
        request = ckpt.save(checkpoint, filepath, async_save=async_save)
        if request is not None:
            from megatron.core.dist_checkpointing.strategies.async_utils import AsyncCallsQueue

            if self._async_queue is None:
                self._async_queue = AsyncCallsQueue()
            # nemolite's checkpoint callback publishes the checkpoint once every rank wrote it.
            for fn in options.get("finalize_fns", ()):
                request.add_finalize_fn(fn)
            self._async_queue.schedule_async_request(request)

    def finalize_async_saves(self, *, blocking: bool = False) -> None:
        """Completes finished asynchronous saves (all of them when `blocking`)."""
        if self._async_queue is not None:
            self._async_queue.maybe_finalize_async_calls(blocking=blocking)

    def load_checkpoint(self, checkpoint_path: str | Path, weights_only: bool | None = None) -> dict[str, Any]:
        """Reads this rank's shards (any saved TP/PP/DP layout) plus the common part.

        `weights_only` is accepted because Lightning 2.6's checkpoint connector passes it
        (trainer/connectors/checkpoint_connector.py resume_start); megatron's loader decides itself.
        """
        module = self.gpt_module
        template: dict[str, Any] = {"state_dict": module.sharded_state_dict()}
        if self.spec.ckpt_include_optimizer and self.optimizers:
            template["optimizer_states"] = [
                ckpt.optimizer_sharded_state_dict(self.optimizers[0], list(module.chunks), is_loading=True)
            ]
        # Per-rank RNG states restore only into the layout that saved them.
        restore_rng = ckpt.saved_rng_layout(checkpoint_path) == ckpt.rng_layout()
        if restore_rng:
            template[ckpt.RNG_KEY] = ckpt.rng_sharded_object(None)
        loaded = ckpt.load(template, checkpoint_path)
        if restore_rng:
            self._pending_rng = loaded.pop(ckpt.RNG_KEY)
        return loaded

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        if self._pending_rng is not None:
            # Restored here, not at load: creating the resumed DataLoader iterator draws from the
            # CPU generator, which on CPU is also the dropout generator.
            ckpt.restore_rng_state(self._pending_rng)
            self._pending_rng = None
        return super().training_step(*args, **kwargs)

    def load_model_state_dict(self, checkpoint: Mapping[str, Any], strict: bool = True) -> None:
        ckpt.load_model_state(list(self.gpt_module.chunks), checkpoint["state_dict"], strict=strict)

    def load_optimizer_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        states = checkpoint.get("optimizer_states")
        if states and self.optimizers:
            self.optimizers[0].load_state_dict(states[0])

    def remove_checkpoint(self, filepath: str | Path) -> None:
        if self.is_global_zero:
            import shutil

            shutil.rmtree(filepath, ignore_errors=True)
