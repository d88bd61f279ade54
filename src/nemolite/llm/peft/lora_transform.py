"""Heavy: LoRA adapters beside megatron-core's tensor-parallel linear layers, and the model transform.

Each adapted layer (`linear_qkv`, `linear_proj`, `linear_fc1`, `linear_fc2`) keeps its megatron
module and checkpoint keys untouched; a `LoRAAdapter` is registered next to it in the same parent
(`linear_qkv_adapter`, ...) and added to its output by a forward hook. So megatron code that reaches
into the layers (`self.linear_qkv.weight`, `backward_dw()`, the MLP's SwiGLU checkpoint factory)
sees exactly the modules it built, and a pretraining checkpoint's keys are a subset of a LoRA run's.

Tensor parallelism (the adapter is partitioned like the layer it adapts):
  - column-parallel base (input whole, output split over TP): A is replicated, B is split by rows
    like the base weight, so each rank's adapter output lines up with its slice of the base output.
    Every rank's B slice feeds from the same `h = x A^T`, so the gradient of `h` is summed over TP
    (`copy_to_tensor_model_parallel_region`); with sequence parallelism the input is gathered first.
  - row-parallel base (input split over TP, output all-reduced): A is split by columns like the base
    weight; `h = x_r A_r^T` is all-reduced (it is `dim` wide, far cheaper than reducing the output),
    then the replicated B gives the full output on every rank (scattered along the sequence under
    sequence parallelism, as the base's reduce-scatter does).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from megatron.core import parallel_state, tensor_parallel
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear, mappings

from nemolite.errors import ConfigError

if TYPE_CHECKING:
    from nemolite.llm.peft.lora import LoRA

COLUMN, ROW = "column", "row"


def _master_a(rank_dim: int, in_features: int, seed_key: str, dtype: torch.dtype) -> torch.Tensor:
    """The whole A matrix, kaiming-uniform (a=sqrt(5), as torch.nn.Linear and HF PEFT draw it).

    Drawn on the CPU from a generator seeded by the layer's global name, so every TP/PP layout
    (and every rank) starts from the same numbers as a single process.
    """
    gen = torch.Generator().manual_seed(zlib.crc32(seed_key.encode()))
    bound = 1.0 / math.sqrt(in_features)
    return torch.empty(rank_dim, in_features).uniform_(-bound, bound, generator=gen).to(dtype)


class LoRAAdapter(torch.nn.Module):
    """`dropout(x) @ A^T @ B^T * alpha/dim` for one megatron tensor-parallel linear layer.

    Args:
        base: the ColumnParallelLinear / RowParallelLinear this adapter sits beside.
        spec: the LoRA spec (rank, alpha, dropout).
        seed_key: names the layer globally; seeds A's initialisation.
        gated: the base is a gated MLP's `linear_fc1` ([gate; up] rows per TP rank), whose
            checkpoint layout megatron splits in two; B is saved the same way.
    """

    def __init__(self, base: Any, spec: LoRA, *, seed_key: str, gated: bool = False) -> None:
        super().__init__()
        self.mode = COLUMN if isinstance(base, ColumnParallelLinear) else ROW
        self.tp_group = base.tp_group
        self.sequence_parallel = bool(base.sequence_parallel)
        self.scale = spec.alpha / spec.dim
        self.dropout = torch.nn.Dropout(spec.dropout) if spec.dropout > 0 else None
        self.gated = gated
        rank = parallel_state.get_tensor_model_parallel_rank()
        weight = base.weight
        kw: dict[str, Any] = {"device": weight.device, "dtype": weight.dtype}
        master = _master_a(spec.dim, base.input_size, seed_key, weight.dtype)
        if self.mode == COLUMN:
            a = master
            b_shape = (base.output_size_per_partition, spec.dim)
        else:
            part = base.input_size_per_partition
            a = master[:, rank * part : (rank + 1) * part]
            b_shape = (base.output_size, spec.dim)
        self.linear_in = torch.nn.Linear(a.shape[1], spec.dim, bias=False, **kw)
        self.linear_out = torch.nn.Linear(spec.dim, b_shape[0], bias=False, **kw)
        with torch.no_grad():
            self.linear_in.weight.copy_(a)
            self.linear_out.weight.zero_()
        # megatron's grad-norm and checkpoint code read these attributes to tell split from
        # replicated parameters (tensor_parallel/layers.py set_tensor_model_parallel_attributes).
        split, split_dim = (self.linear_out.weight, 0) if self.mode == COLUMN else (self.linear_in.weight, 1)
        tensor_parallel.set_tensor_model_parallel_attributes(split, True, split_dim, 1)
        for param in self.parameters():
            tensor_parallel.set_defaults_if_not_set_tensor_model_parallel_attributes(param)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout is None:
            return x
        if self.mode == ROW:
            # The input is split over TP: each rank needs its own mask, from megatron's TP RNG.
            with tensor_parallel.get_cuda_rng_tracker().fork():
                return self.dropout(x)
        return self.dropout(x)  # replicated input: the default RNG is the same on every TP rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The adapter's contribution, laid out like the base layer's output."""
        return self.project(self._dropout(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """`x @ A^T @ B^T * alpha/dim` (no dropout), laid out like the base layer's output."""
        if self.mode == COLUMN:
            if self.sequence_parallel:
                # The gradient below is already summed over TP, so the backward only splits it.
                x = mappings.gather_from_sequence_parallel_region(
                    x, tensor_parallel_output_grad=False, group=self.tp_group
                )
            h = mappings.copy_to_tensor_model_parallel_region(self.linear_in(x), group=self.tp_group)
            return self.linear_out(h) * self.scale
        h = mappings.reduce_from_tensor_model_parallel_region(self.linear_in(x), group=self.tp_group)
        out = self.linear_out(h) * self.scale
        if self.sequence_parallel:
            out = mappings.scatter_to_sequence_parallel_region(out, group=self.tp_group)
        return out

    def add_to_output(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        """Forward hook on the base layer: megatron linears return (output, bias); adds to output."""
        base_out, bias = output
        return base_out + self(args[0]), bias

    def sharded_state_dict(
        self, prefix: str = "", sharded_offsets: tuple = (), metadata: dict | None = None
    ) -> dict[str, Any]:
        """A and B as dist-checkpointing tensors, split over TP like the base layer's weight."""
        from megatron.core.transformer.mlp import apply_swiglu_sharded_factory
        from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

        metadata = metadata or {}
        dp_cp_group = metadata.get("dp_cp_group") or parallel_state.get_data_parallel_group(
            with_context_parallel=True
        )
        out = make_sharded_tensors_for_checkpoint(
            self.state_dict(prefix="", keep_vars=True), prefix, self.split_axes(), sharded_offsets,
            tp_group=self.tp_group, dp_cp_group=dp_cp_group,
        )
        if self.gated:  # the tensors split by output rows hold [gate; up] rows on each TP rank
            for name, axis in self.split_axes().items():
                if axis == 0:
                    out[prefix + name] = apply_swiglu_sharded_factory(
                        out[prefix + name], sharded_offsets,
                        metadata.get("singleton_local_shards", False),
                    )
        return out

    def split_axes(self) -> dict[str, int]:
        """The parameters split over TP and their axis (the others are replicated)."""
        return {"linear_out.weight": 0} if self.mode == COLUMN else {"linear_in.weight": 1}


def _layers(chunk: torch.nn.Module) -> Iterator[Any]:
    """The transformer layers of a model chunk (anything with megatron's global `layer_number`)."""
    from megatron.core.transformer.transformer_layer import TransformerLayer

    for module in chunk.modules():
        if isinstance(module, TransformerLayer):
            yield module


def _targets(layer: Any, names: tuple[str, ...]) -> Iterator[tuple[str, torch.nn.Module, str]]:
    """(path in layer, parent module, child name) of each linear to adapt, skipping MoE experts."""
    for path, parent in layer.named_modules():
        if "experts" in path.split("."):
            continue  # expert weights are split over EP, not TP; they stay frozen without adapters
        for name in names:
            child = getattr(parent, name, None)
            if isinstance(child, torch.nn.Module) and name in parent._modules:
                yield (f"{path}.{name}" if path else name), parent, name


def _check_supported(base: torch.nn.Module, where: str) -> None:
    ok = (isinstance(base, ColumnParallelLinear) and not base.gather_output) or (
        isinstance(base, RowParallelLinear) and base.input_is_parallel
    )
    if not ok:
        raise ConfigError(
            "model.config.transformer_layer_spec", type(base).__name__,
            f"LoRA adapts megatron-core's local ColumnParallelLinear/RowParallelLinear, not {where}'s",
            "set model.config.transformer_layer_spec=local for LoRA fine-tuning",
        )


def apply_lora(chunks: list[torch.nn.Module], spec: LoRA, *, seed: int = 0) -> list[str]:
    """Freezes every weight of `chunks` and adds trainable adapters; returns the adapted layer names.

    Must run before megatron's DDP and optimizer are built: both take only parameters that
    require gradients, so the frozen base gets no grad buffer and no optimizer state.
    """
    for chunk in chunks:
        for param in chunk.parameters():
            param.requires_grad_(False)
    adapter_cls: type[LoRAAdapter] = LoRAAdapter
    if spec.method == "dora":
        from nemolite.llm.peft.dora_transform import DoRAAdapter

        adapter_cls = DoRAAdapter
    adapted = []
    for chunk in chunks:
        for layer in _layers(chunk):
            gated = bool(getattr(layer.config, "gated_linear_unit", False))
            for path, parent, name in list(_targets(layer, tuple(spec.target_modules))):
                where = f"layers.{layer.layer_number - 1}.{path}"
                base = getattr(parent, name)
                _check_supported(base, where)
                adapter = adapter_cls(
                    base, spec, seed_key=f"{seed}/{where}", gated=gated and name == "linear_fc1"
                )
                parent.add_module(f"{name}_adapter", adapter)
                base.register_forward_hook(adapter.add_to_output)
                adapted.append(where)
    return adapted


def adapter_parameters(chunks: list[torch.nn.Module]) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every LoRA (or DoRA) adapter weight in `chunks`."""
    for i, chunk in enumerate(chunks):
        for name, module in chunk.named_modules():
            if isinstance(module, LoRAAdapter):
                for pname, param in module.named_parameters():
                    yield f"{i}.{name}.{pname}", param
