"""Heavy: DoRA adapters beside megatron-core's tensor-parallel linear layers.

A `DoRAAdapter` is a `LoRAAdapter` (same A/B layout over TP, same hook on the base layer) with a
magnitude `m` per output feature. The hook turns the base output `W x` into

    W x + (s - 1) W x + s * alpha/dim B A x,    s = m / ||W + alpha/dim B A||  (row norms)

which is `m (W + alpha/dim B A) x / ||W + alpha/dim B A||`, DoRA's layer (eq. 5 of the paper),
written so that at initialisation (`B = 0`, `m = ||W||`, so `s` is exactly 1) the output is the base
output bit for bit. A bias that megatron added inside the layer is kept out of the scaling.

Tensor parallelism. A column-parallel layer holds whole rows of `W` and `B A` (A is replicated, B
split by rows): each rank's norms and magnitudes are its slice, split like `B`. A row-parallel layer
holds a column slice of every row: the squared row norms are summed over TP, and `m` is replicated
(its gradient is summed over TP by megatron's finalize_model_grads under sequence parallelism,
where each rank sees a different slice of the sequence).

As in NeMo (nemo/collections/llm/peft/dora.py) and the paper (section 4.3), the norm is not
differentiated, and with dropout the base term gets NeMo's correction `(s - 1) W (dropout(x) - x)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from megatron.core import tensor_parallel

from nemolite.llm.peft.lora_transform import COLUMN, ROW, LoRAAdapter

if TYPE_CHECKING:
    from nemolite.llm.peft.lora import LoRA


class DoRAAdapter(LoRAAdapter):
    """A LoRA adapter plus the magnitude vector `weight_magnitude` (NeMo's name) of its base layer."""

    def __init__(self, base: Any, spec: LoRA, *, seed_key: str, gated: bool = False) -> None:
        super().__init__(base, spec, seed_key=seed_key, gated=gated)
        self.weight_magnitude = torch.nn.Parameter(self.weight_norm(base.weight))
        if self.mode == COLUMN:
            tensor_parallel.set_tensor_model_parallel_attributes(self.weight_magnitude, True, 0, 1)
        else:
            tensor_parallel.set_defaults_if_not_set_tensor_model_parallel_attributes(
                self.weight_magnitude
            )
            if self.sequence_parallel:
                # megatron sums the TP ranks' gradients of parameters marked so (as for layernorms)
                setattr(self.weight_magnitude, "sequence_parallel", True)  # noqa: B010

    @torch.no_grad()
    def weight_norm(self, weight: torch.Tensor) -> torch.Tensor:
        """`||W + alpha/dim B A||` per output row of this rank's slice, in the weight's dtype."""
        merged = weight.float() + self.scale * (
            self.linear_out.weight.float() @ self.linear_in.weight.float()
        )
        squares = merged.pow(2).sum(dim=1)
        if self.mode == ROW and torch.distributed.get_world_size(self.tp_group) > 1:
            torch.distributed.all_reduce(squares, group=self.tp_group)
        return squares.sqrt().to(weight.dtype)

    def add_to_output(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        """Forward hook on the base layer: rescales its output (bias excluded) and adds B A x."""
        base_out, bias = output
        x = args[0]
        dropped = self._dropout(x)
        s = self.weight_magnitude / self.weight_norm(cast(torch.Tensor, module.weight))
        direction = base_out
        inner_bias = getattr(module, "bias", None) if bias is None else None
        if inner_bias is not None and not getattr(module, "skip_bias_add", True):
            direction = base_out - inner_bias  # megatron added the bias inside: DoRA leaves it
        out = base_out + (s - 1) * direction + s * self.project(dropped)
        if self.dropout is not None and self.training:  # NeMo's correction of the base term
            # `module.forward` skips this hook; it does the layer's TP communication itself.
            delta, delta_bias = module.forward(dropped - x)
            if delta_bias is None and inner_bias is not None:
                delta = delta - inner_bias
            out = out + (s - 1) * delta
        return out, bias

    def split_axes(self) -> dict[str, int]:
        """A, B as in LoRA; the magnitude is split like the output rows of a column-parallel layer."""
        axes = super().split_axes()
        if self.mode == COLUMN:
            axes["weight_magnitude"] = 0
        return axes
