"""`MegatronMixedPrecision`: megatron-core's own mixed precision (bf16/fp16 params + fp32 main params).

Lightning's `bf16-mixed` autocasts around megatron layers that manage their own dtypes and breaks
them, so this plugin instead builds the model in the low precision (megatron's `Float16Module`) and
keeps fp32 main params in megatron's optimizer. Light module.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from nemolite.errors import ConfigError, UnknownChoiceError

PRECISIONS = ("bf16-mixed", "16-mixed", "32", "32-true", "bf16", "16")
DTYPES = ("float32", "bfloat16", "float16")
FP8_FORMATS = ("hybrid", "e4m3")
FP8_RECIPES = ("delayed", "tensorwise", "mxfp8", "blockwise")


@dataclass
class MegatronMixedPrecision:
    """Mixed precision the megatron-core way (NeMo's `nl.MegatronMixedPrecision`).

    Attributes:
        precision: "bf16-mixed", "16-mixed" or "32".
        params_dtype: dtype of the model params (None = from precision).
        pipeline_dtype: dtype of activations sent between pipeline stages (None = from precision).
        autocast_enabled: also run torch.autocast (rarely useful with megatron).
        grad_reduce_in_fp32: accumulate and all-reduce gradients in fp32.
        fp8: None, "hybrid" or "e4m3" (TransformerEngine on Hopper or newer GPUs only).
        fp8_recipe: "delayed", "tensorwise", "mxfp8" or "blockwise".
        fp8_margin: fp8 scaling margin.
        fp8_amax_history_len: amax history length for delayed scaling.
        fp8_amax_compute_algo: "most_recent" or "max".
        fp8_param: keep params in fp8 (saves memory).
        fp16_loss_scale: static loss scale for fp16 (None = dynamic).
        fp16_initial_loss_scale: first dynamic loss scale for fp16.
    """

    precision: str = "bf16-mixed"
    _: KW_ONLY
    params_dtype: str | None = None
    pipeline_dtype: str | None = None
    autocast_enabled: bool = False
    grad_reduce_in_fp32: bool = True
    fp8: str | None = None
    fp8_recipe: str = "delayed"
    fp8_margin: int = 0
    fp8_amax_history_len: int = 1
    fp8_amax_compute_algo: str = "most_recent"
    fp8_param: bool = False
    fp16_loss_scale: float | None = None
    fp16_initial_loss_scale: float = 2.0**32

    @property
    def dtype_name(self) -> str:
        """The params dtype this precision trains in ("float32", "bfloat16" or "float16")."""
        if self.params_dtype is not None:
            return self.params_dtype
        if self.precision.startswith("bf16"):
            return "bfloat16"
        if self.precision.startswith("16"):
            return "float16"
        return "float32"

    def validate(self, prefix: str = "trainer.plugins", *, cuda: bool | None = None) -> None:
        """Raises `ConfigError` for unknown values, and for fp8 where no CUDA GPU is present."""
        if self.precision not in PRECISIONS:
            raise UnknownChoiceError(f"{prefix}.precision", self.precision, PRECISIONS)
        for name in ("params_dtype", "pipeline_dtype"):
            value = getattr(self, name)
            if value is not None and value not in DTYPES:
                raise UnknownChoiceError(f"{prefix}.{name}", value, DTYPES)
        if self.fp8 is None:
            return
        if self.fp8 not in FP8_FORMATS:
            raise UnknownChoiceError(f"{prefix}.fp8", self.fp8, FP8_FORMATS)
        if self.fp8_recipe not in FP8_RECIPES:
            raise UnknownChoiceError(f"{prefix}.fp8_recipe", self.fp8_recipe, FP8_RECIPES)
        if cuda is False:
            raise ConfigError(
                f"{prefix}.fp8",
                self.fp8,
                "fp8 needs TransformerEngine on a CUDA GPU (Hopper or newer) and none is present",
                f"set {prefix}.fp8=None (bf16-mixed trains on CPU)",
            )


def bf16_mixed() -> MegatronMixedPrecision:
    """bf16 params, fp32 main params and gradient reduction (NeMo's `bf16_mixed()` recipe helper)."""
    return MegatronMixedPrecision(precision="bf16-mixed")


def fp16_mixed() -> MegatronMixedPrecision:
    """fp16 params with dynamic loss scaling and fp32 main params."""
    return MegatronMixedPrecision(precision="16-mixed")
