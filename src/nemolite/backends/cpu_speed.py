"""Faster CPU paths for megatron-core hot spots, each computing what upstream computes.

Without CUDA there are no fused kernels (no TransformerEngine, apex or gradient-accumulation fusion),
and megatron's unfused fallbacks pay for generality that a CPU step does not use. A profile of a
`llama_tiny` step (benchmarks/engine_vs_transformers.py --profile nemolite) put these ahead of a
plain PyTorch Llama:

- tensor_parallel/layers.py `linear_with_grad_accumulation_and_async_allreduce`: a custom autograd
  function whose Python forward/backward (and their bookkeeping) run for every linear layer even
  when it has nothing to overlap or fuse. With no dgrad all-reduce, no sequence parallelism and no
  gradient-accumulation fusion it is `F.linear` (the same matmuls); that case goes to torch's. In
  training, a weight's gradient is added into megatron DDP's `main_grad` buffer by the backward
  matmul itself (`addmm_`, as upstream's GPU gradient-accumulation fusion) rather than through
  `param.grad` and a second pass in DDP's hook: one pass less over every weight per micro-batch.
- models/common/embeddings/rope_utils.py `_apply_rotary_pos_emb_bshd`: recomputes cos/sin per call,
  builds `rotate_half` with a `cat`, and copies the result once more with `cat((t, t_pass))` even
  when `t_pass` is empty; its autograd saves the input. Here one autograd function does the same
  arithmetic (bit for bit) with two writes into the output and saves only cos/sin, computes cos/sin
  once per `freqs` tensor (all layers share it), and lays its output out `[b, heads, s, d]` in
  memory, which torch's CPU flash-attention kernel reads faster than megatron's `[s, b, ...]` rows.
- transformer/mlp.py `MLP.forward`, unfused SwiGLU: `torch.chunk` of fc1's output, `x_linear + 0.0`
  (a copy, saved for backward), then `silu(gate) * up`; autograd's backward of the chunk is a `cat`
  of the two halves' gradients, a full pass over the widest activation of the layer. Here one
  autograd function computes the same products and writes both halves' gradients straight into one
  tensor (no cat, no copy of `up`), saving fc1's output and the gate's silu.
- tensor_parallel/cross_entropy.py `vocab_parallel_cross_entropy`: three all-reduces and a dozen
  element-wise passes over the logits, which with one tensor-parallel rank are `F.cross_entropy`.
- tensor_parallel/mappings.py `copy_to_` / `reduce_from_tensor_model_parallel_region`: autograd
  functions that are identities with one tensor-parallel rank, paid in Python twice per linear
  layer (forward and backward); with one rank they are a view of the input.
- transformer/attention.py `Attention.forward`: splits the fused QKV projection into three views,
  copies the query into `[s, b, heads, d]`, rotates query and key, and its backward concatenates
  the three gradients. In the plain self-attention case one autograd function splits and rotates
  (`_QKVRope`) and writes the gradients into one tensor; same values bit for bit.
- utils.py `local_multi_tensor_scale` (used by gradient clipping without apex/TE): a temporary
  and a copy per gradient where one in-place multiply gives the same numbers.

`apply()` installs them (idempotent); `tests/backends/test_cpu_speed.py` checks each against the
upstream function it replaces. Delete an entry the day upstream takes the fast path itself.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import torch
import torch.nn.functional as F

_PATCHED = "__nemolite_cpu_speed__"


def _module(name: str) -> Any:
    """megatron.core's module `name`, or a class in one (`transformer.mlp.MLP`)."""
    try:
        return importlib.import_module(f"megatron.core.{name}")
    except ModuleNotFoundError:
        parent, _, attr = name.rpartition(".")
        return getattr(_module(parent), attr)


# ---- linear layers -----------------------------------------------------------------------------
def accumulates_into_main_grad(input: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the weight gradient can go straight into megatron DDP's fp32 `main_grad` buffer.

    Training under megatron's DistributedDataParallel gives each parameter a `main_grad` view of its
    gradient buffer, and DDP's per-parameter hook adds `param.grad` into it after every micro-batch.
    A weight shared by two layers on this stage (tied embeddings: `zero_out_wgrad`) also gets a
    gradient from the embedding lookup, which must keep going through `param.grad`.
    """
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return False
    main_grad = getattr(weight, "main_grad", None)
    return (main_grad is not None and not getattr(weight, "zero_out_wgrad", False)
            and main_grad.dtype == weight.dtype == input.dtype and main_grad.device == weight.device)


class _LinearIntoMainGrad(torch.autograd.Function):
    """`F.linear` whose backward accumulates the weight gradient into `weight.main_grad` in its matmul.

    What megatron's gradient-accumulation fusion does on GPU (`wgrad_gemm_accum_fp32`), with the CPU
    BLAS: `main_grad.addmm_(grad_output^T, input)` adds the product to the buffer as it computes it,
    instead of allocating `param.grad` and DDP's hook adding it into `main_grad` in a second pass
    over every weight, every micro-batch. As upstream's fused path, it marks the weight
    `grad_added_to_main_grad` and hands autograd an uninitialised gradient that DDP's hook drops.
    """

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        return F.linear(input, weight)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        input, weight = ctx.saved_tensors
        grad_input = grad_output.matmul(weight) if ctx.needs_input_grad[0] else None
        weight.main_grad.addmm_(grad_output.reshape(-1, grad_output.shape[-1]).t(),
                                input.reshape(-1, input.shape[-1]))
        weight.grad_added_to_main_grad = True
        return grad_input, torch.empty_like(weight)


def fast_linear(original: Any) -> Any:
    """`linear_with_grad_accumulation_and_async_allreduce` that is `F.linear` when nothing is overlapped."""

    @functools.wraps(original)
    def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
               gradient_accumulation_fusion: bool, allreduce_dgrad: bool, sequence_parallel: bool,
               grad_output_buffer: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
        if gradient_accumulation_fusion or allreduce_dgrad or sequence_parallel or grad_output_buffer is not None:
            return original(input, weight, bias, gradient_accumulation_fusion, allreduce_dgrad,
                            sequence_parallel, grad_output_buffer, *args, **kwargs)
        if accumulates_into_main_grad(input, weight):
            output = _LinearIntoMainGrad.apply(input, weight)
        else:
            output = F.linear(input, weight)
        # Upstream adds the bias after the matmul (not addmm): the same rounding here.
        return output + bias if bias is not None else output

    setattr(linear, _PATCHED, True)
    return linear


# ---- tensor-parallel regions with one rank -----------------------------------------------------
def fast_region(original: Any) -> Any:
    """`copy_to_` / `reduce_from_tensor_model_parallel_region` as a view of the input with one TP rank.

    Both are autograd functions whose forward and backward hand back their input when the group has
    one rank (`_reduce` skips a one-rank all-reduce), yet their Python `apply` and `backward` run
    for every column- and row-parallel linear layer and the embedding, every micro-batch. With one
    rank this returns `input_.view_as(input_)`: what autograd itself makes of a function returning
    its input (a new view, here with torch's own pass-through backward). A view, not the input
    itself: downstream code may treat the result as a tensor of its own.
    """

    @functools.wraps(original)
    def region(input_: torch.Tensor, group: Any = None) -> torch.Tensor:
        if group is not None and group.size() == 1:
            return input_.view_as(input_)
        return original(input_, group)

    setattr(region, _PATCHED, True)
    return region


# ---- rotary embeddings -------------------------------------------------------------------------
def _rotate_into(out: torch.Tensor, t: torch.Tensor, sin: torch.Tensor) -> None:
    """Adds rotate_half(t) * sin into `out` (holding t * cos): upstream's non-interleaved RoPE.

    rotate_half(t) = [-t2, t1]; upstream's sum (t * cos) + (rotate_half(t) * sin) rounds alike:
    a + (-b) * c is a - b * c exactly in IEEE arithmetic (no negated copy needed).
    """
    half = t.shape[-1] // 2
    out[..., :half] -= t[..., half:] * sin[..., :half]
    out[..., half:] += t[..., :half] * sin[..., half:]


def _rotate_grad_into(out: torch.Tensor, grad: torch.Tensor, sin: torch.Tensor) -> None:
    """Adds the transpose of rotate_half applied to grad * sin into `out` (holding grad * cos).

    The transpose of rotate_half is [g2, -g1]: as upstream's cat/neg backward adds them.
    """
    half = grad.shape[-1] // 2
    gs = grad * sin
    out[..., :half] += gs[..., half:]
    out[..., half:] -= gs[..., :half]


class _Rope(torch.autograd.Function):
    """t * cos + rotate_half(t) * sin over the last dim, for non-interleaved RoPE over all channels."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if t.dim() == 4:
            # [s, b, heads, d] laid out heads-major in memory ([b, heads, s, d] contiguous): the layout
            # torch's CPU flash attention reads fastest (SDPAttention permutes to it for free), where
            # megatron's [s, b, ...] rows sit b x heads x d floats apart. Same values either way.
            s, b, heads, d = t.shape
            out = torch.empty((b, heads, s, d), dtype=t.dtype, device=t.device).permute(2, 0, 1, 3)
            torch.mul(t, cos, out=out)
        else:
            out = t * cos
        _rotate_into(out, t, sin)
        ctx.save_for_backward(cos, sin)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        out = grad * cos
        _rotate_grad_into(out, grad, sin)
        return out, None, None


_ROPE_TABLES: list[Any] = [None, -1, None, None, None]  # freqs, its version, mscale, dtype -> (cos, sin)


def _rope_tables(freqs: torch.Tensor, mscale: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's `(cos(freqs) * mscale).to(dtype)` and sin, once per `freqs` tensor.

    Every layer of a forward (queries and keys) rotates by the same `freqs` tensor (megatron's
    RotaryEmbedding also caches it across micro-batches): computed once while it is unchanged.
    """
    last = _ROPE_TABLES
    version = None if freqs.is_inference() else freqs._version  # inference tensors have none
    if not (version is not None and last[0] is freqs and last[1] == version and last[2] == mscale
            and last[3] == dtype):
        cos, sin = torch.cos(freqs), torch.sin(freqs)
        if mscale != 1.0:  # x * 1.0 is x exactly: skipped
            cos, sin = cos * mscale, sin * mscale
        last[:] = [freqs, version, mscale, dtype, (cos.to(dtype), sin.to(dtype))]
    return last[4]  # type: ignore[no-any-return]


def fast_rope(original: Any) -> Any:
    """`_apply_rotary_pos_emb_bshd` through `_Rope` in its common case (all channels, not interleaved).

    The arguments are read by name from upstream's own signature: megatron-core 0.16 calls the MLA
    flag `multi_latent_attention`, 0.19 `mla_rotary_interleaved` (the old name kept, deprecated).
    """
    parameters = inspect.signature(original).parameters
    names = list(parameters)[2:]  # after (t, freqs)
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}

    @functools.wraps(original)
    def apply(t: torch.Tensor, freqs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        # What signature.bind + apply_defaults would give, without their cost on every call.
        given = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
        interleaved = (given.get("rotary_interleaved") or given.get("mla_rotary_interleaved")
                       or given.get("multi_latent_attention"))
        if interleaved or freqs.shape[-1] != t.shape[-1] or t.shape[-1] % 2:
            return original(t, freqs, *args, **kwargs)
        cos, sin = _rope_tables(freqs, given.get("mscale", 1.0), t.dtype)
        return _Rope.apply(t, cos, sin)

    setattr(apply, _PATCHED, True)
    return apply


# ---- self-attention: QKV split and RoPE in one pass ---------------------------------------------
class _QKVRope(torch.autograd.Function):
    """Query, key and value out of the fused QKV projection, RoPE applied to query and key.

    Upstream splits megatron's grouped `[s, b, groups, (per_group + 2) * d]` output into three views,
    copies the query to make `[s, b, heads, d]`, then rotates query and key (each a new tensor);
    its backward rotates the gradients back, copies the query's into the grouped shape and
    concatenates the three. Here query, key and value come out `[b, heads, s, d]` in memory (the
    layout torch's CPU flash attention reads fastest): the query is copied into it once (the copy
    upstream's reshape makes) and rotated in place, the key is rotated straight out of the
    projection's output, the value copied (as SDPAttention would); the backward writes the three
    gradients into one tensor, no `cat`. Same arithmetic as `_Rope`, so the same values bit for bit.
    """

    @staticmethod
    def forward(ctx: Any, mixed: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, groups: int,
                per_group: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s, b = mixed.shape[0], mixed.shape[1]
        grouped = mixed.reshape(s, b, groups, per_group + 2, head_dim)

        def new(*inner: int) -> torch.Tensor:  # [s, b, *inner, d] over [b, *inner, s, d] memory
            out = torch.empty((b, *inner, s, head_dim), dtype=mixed.dtype, device=mixed.device)
            return out.permute(len(inner) + 1, 0, *range(1, len(inner) + 1), len(inner) + 2)

        # The query is copied into its new layout first (the copy upstream's reshape makes), then
        # rotated there: reading the grouped rows while writing heads-major ones would make torch's
        # element-wise loops run over runs of d / 2 floats.
        query = new(groups, per_group)
        query.copy_(grouped[:, :, :, :per_group])
        query = query.view(s, b, groups * per_group, head_dim)
        half = head_dim // 2
        upper = query[..., half:] * sin[..., :half]
        lower = query[..., :half] * sin[..., half:]
        query.mul_(cos)
        query[..., :half] -= upper
        query[..., half:] += lower
        key, k_in = new(groups), grouped[:, :, :, per_group]
        torch.mul(k_in, cos, out=key)
        _rotate_into(key, k_in, sin)
        value = new(groups)
        value.copy_(grouped[:, :, :, per_group + 1])
        ctx.save_for_backward(cos, sin)
        ctx.shape = (s, b, groups, per_group, head_dim)
        return query, key, value

    @staticmethod
    def backward(ctx: Any, grad_query: torch.Tensor, grad_key: torch.Tensor,
                 grad_value: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None]:
        cos, sin = ctx.saved_tensors
        s, b, groups, per_group, head_dim = ctx.shape
        grad = torch.empty((s, b, groups, per_group + 2, head_dim), dtype=grad_query.dtype,
                           device=grad_query.device)
        # Rotated back in the gradients' own layout (as `_Rope.backward`), then written into place.
        for incoming, into in ((grad_query, grad[:, :, :, :per_group]), (grad_key, grad[:, :, :, per_group])):
            rotated = incoming * cos
            _rotate_grad_into(rotated, incoming, sin)
            into.copy_(rotated.view(into.shape))
        grad[:, :, :, per_group + 1].copy_(grad_value)
        return grad.view(s, b, -1), None, None, None, None, None


# Attention.forward's arguments that the fused path takes only as None.
_NONE_ONLY = frozenset({"key_value_states", "inference_context", "rotary_pos_cos", "rotary_pos_sin",
                        "rotary_pos_cos_sin", "attention_bias", "packed_seq_params",
                        "sequence_len_offset", "inference_params"})


def _plain_rope_attention(self: Any, attention: Any, identity: type) -> bool:
    """Whether this attention module's forward is projection, split, plain RoPE, core attention, proj."""
    c = self.config
    return (type(self).get_query_key_value_tensors is attention.SelfAttention.get_query_key_value_tensors
            and isinstance(self, attention.SelfAttention)
            and not c.apply_rope_fusion and not c.rotary_interleaved and not c.multi_latent_attention
            and not c.flash_decode and not c.sequence_parallel and not c.test_mode
            and not getattr(c, "fused_single_qkv_rope", False)
            and not getattr(c, "attention_output_gate", False)
            and not getattr(c, "no_rope_freq", None)
            and getattr(c, "mrope_section", None) is None
            and c.num_query_groups >= getattr(self, "world_size", 1)
            and isinstance(self.q_layernorm, (type(None), identity))
            and isinstance(self.k_layernorm, (type(None), identity))
            and not self.checkpoint_core_attention
            and not getattr(self, "offload_qkv_linear", False)
            and not getattr(self, "offload_core_attention", False)
            and not getattr(self, "offload_attn_proj", False))


def fast_attention_forward(original: Any) -> Any:
    """`Attention.forward` through `_QKVRope` in the plain self-attention case, upstream's otherwise.

    The plain case: training or evaluation without an inference context or packed sequences, RoPE
    over all channels (not interleaved, not fused, not multimodal), no q/k norms, output gate,
    sequence parallelism, recomputed core attention or activation offloading.
    """
    attention = _module("transformer.attention")
    identity = _module("transformer.identity_op").IdentityOp
    yarn = getattr(attention, "_yarn_get_concentration_factor_from_config", None)

    @functools.wraps(original)
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        freqs = kwargs.get("rotary_pos_emb")
        if isinstance(freqs, tuple) and len(freqs) == 2 and freqs[0] is freqs[1]:
            freqs = freqs[0]
        if (len(args) + ("attention_mask" in kwargs) != 2 or len(args) == 0
                or not isinstance(freqs, torch.Tensor)
                or any(value is not None for name, value in kwargs.items() if name in _NONE_ONLY)
                or not kwargs.keys() <= _NONE_ONLY | {"attention_mask", "rotary_pos_emb"}
                or not _plain_rope_attention(self, attention, identity)):
            return original(self, *args, **kwargs)
        hidden_states = args[0]
        attention_mask = args[1] if len(args) == 2 else kwargs["attention_mask"]
        head_dim = self.hidden_size_per_attention_head
        if (freqs.dim() != 4 or freqs.shape[1:] != (1, 1, head_dim) or head_dim % 2
                or freqs.shape[0] != hidden_states.shape[0]):
            return original(self, *args, **kwargs)
        mscale = getattr(self, "_yarn_concentration_factor", None)  # megatron-core 0.19
        if mscale is None:
            mscale = yarn(self.config) if yarn is not None else 1.0
        mixed, _ = self.linear_qkv(hidden_states)
        cos, sin = _rope_tables(freqs, mscale, mixed.dtype)
        groups = self.num_query_groups_per_partition
        query, key, value = _QKVRope.apply(mixed, cos, sin, groups,
                                           self.num_attention_heads_per_partition // groups, head_dim)
        core = self.core_attention(query, key, value, attention_mask, attn_mask_type=self.attn_mask_type,
                                   attention_bias=None, packed_seq_params=None)
        return self.linear_proj(core)

    setattr(forward, _PATCHED, True)
    return forward


# ---- SwiGLU MLP --------------------------------------------------------------------------------
class _SwiGLU(torch.autograd.Function):
    """silu(x[..., :f]) * x[..., f:] for fc1's output x of width 2f, bit for bit as megatron's glu."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        gate, up = torch.chunk(x, 2, dim=-1)
        activated = F.silu(gate)
        ctx.save_for_backward(x, activated)
        return activated * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, activated = ctx.saved_tensors
        gate, up = torch.chunk(x, 2, dim=-1)
        grad_x = torch.empty_like(x)
        grad_gate, grad_up = torch.chunk(grad_x, 2, dim=-1)
        # Upstream's MulBackward gives grad * up and grad * silu(gate); SiluBackward takes the first
        # (here in place, in the gate's half of the result: element by element, so aliasing is safe).
        torch.mul(grad, up, out=grad_gate)
        torch.ops.aten.silu_backward.grad_input(grad_gate, gate, grad_input=grad_gate)
        torch.mul(grad, activated, out=grad_up)
        return grad_x


def _plain_swiglu(config: Any) -> bool:
    """Whether `MLP.forward` takes the unfused `silu(gate) * (up + 0)` branch with nothing else on it."""
    return (config.gated_linear_unit and config.activation_func is F.silu
            and not getattr(config, "use_te_activation_func", False)
            and not config.bias_activation_fusion
            and getattr(config, "activation_func_clamp_value", None) is None
            and getattr(config, "glu_linear_offset", 0.0) == 0.0)


def fast_mlp_forward(original: Any) -> Any:
    """`MLP.forward` whose SwiGLU is `_SwiGLU` in the plain case (no fusion, clamp, offset or token scale)."""

    @functools.wraps(original)
    def forward(self: Any, hidden_states: torch.Tensor, per_token_scale: Any = None, **kwargs: Any) -> Any:
        if per_token_scale is not None or not _plain_swiglu(self.config):
            return original(self, hidden_states, per_token_scale, **kwargs)
        intermediate, bias = self.linear_fc1(hidden_states)
        if bias is not None:
            intermediate = intermediate + bias
        return self.linear_fc2(_SwiGLU.apply(intermediate))

    setattr(forward, _PATCHED, True)
    return forward


# ---- loss --------------------------------------------------------------------------------------
def fast_cross_entropy(original: Any) -> Any:
    """`vocab_parallel_cross_entropy` that is `F.cross_entropy` with one tensor-parallel rank.

    megatron-core 0.19 passes the TP group (`tp_group=`); 0.16 reads it from parallel_state.
    """

    @functools.wraps(original)
    def cross_entropy(vocab_parallel_logits: torch.Tensor, target: torch.Tensor,
                      label_smoothing: float = 0.0, *args: Any, **kwargs: Any) -> torch.Tensor:
        from megatron.core import parallel_state

        tp_group = kwargs.get("tp_group", args[0] if args else None)
        tp_size = (tp_group.size() if tp_group is not None
                   else parallel_state.get_tensor_model_parallel_world_size())
        if tp_size != 1:
            return original(vocab_parallel_logits, target, label_smoothing, *args, **kwargs)
        vocab = vocab_parallel_logits.shape[-1]
        loss = F.cross_entropy(vocab_parallel_logits.reshape(-1, vocab), target.reshape(-1),
                               reduction="none", label_smoothing=label_smoothing)
        return loss.view(target.shape)

    setattr(cross_entropy, _PATCHED, True)
    return cross_entropy


# ---- gradient clipping -------------------------------------------------------------------------
def fast_multi_tensor_scale(original: Any) -> Any:
    """megatron's local `multi_tensor_scale` (no apex/TE) writing `src * scale` straight into `dst`.

    Upstream's fallback (core/utils.py) runs `dst.copy_(src * scale)` per tensor: a temporary the
    size of each gradient and a second pass to copy it back. Gradient clipping scales every
    gradient in place with it (`[grads, grads]`) whenever the norm exceeds the bound: two passes
    and an allocation over the whole model where one in-place multiply does, with the same result.
    A fused kernel (apex, TransformerEngine) is left as it is.
    """
    fallback = getattr(_module("utils"), "local_multi_tensor_scale", None)
    if fallback is None or original is not fallback:
        return original

    @functools.wraps(original)
    def multi_tensor_scale(chunk_size: int, noop_flag: Any, tensor_lists: Any, scale: float) -> None:
        for src, dst in zip(tensor_lists[0], tensor_lists[1], strict=False):
            torch.mul(src, scale, out=dst)

    setattr(multi_tensor_scale, _PATCHED, True)
    return multi_tensor_scale


# ---- installing --------------------------------------------------------------------------------
PATCHES: tuple[tuple[str, str, Any], ...] = (
    ("tensor_parallel.layers", "linear_with_grad_accumulation_and_async_allreduce", fast_linear),
    ("models.common.embeddings.rope_utils", "_apply_rotary_pos_emb_bshd", fast_rope),
    ("transformer.mlp.MLP", "forward", fast_mlp_forward),
    ("transformer.attention.Attention", "forward", fast_attention_forward),
    # layers.py's column/row-parallel linears and the embedding call them by these module-level names.
    ("tensor_parallel.layers", "copy_to_tensor_model_parallel_region", fast_region),
    ("tensor_parallel.layers", "reduce_from_tensor_model_parallel_region", fast_region),
    # language_module.py calls it as `tensor_parallel.vocab_parallel_cross_entropy`.
    ("tensor_parallel", "vocab_parallel_cross_entropy", fast_cross_entropy),
)
# Module-level choices between a fused kernel and megatron's fallback; absent in some releases.
OPTIONAL_PATCHES: tuple[tuple[str, str, Any], ...] = (
    ("optimizer.clip_grads", "multi_tensor_scale_impl", fast_multi_tensor_scale),
    ("optimizer.optimizer", "multi_tensor_scale_impl", fast_multi_tensor_scale),
)


def apply() -> None:
    """Installs the fast paths into megatron-core's modules (idempotent)."""
    for module_name, attr, make in PATCHES:
        mod = _module(module_name)
        current = getattr(mod, attr)
        if not getattr(current, _PATCHED, False):
            setattr(mod, attr, make(current))
    for module_name, attr, make in OPTIONAL_PATCHES:
        mod = _module(module_name)
        current = getattr(mod, attr, None)
        if current is not None and not getattr(current, _PATCHED, False):
            setattr(mod, attr, make(current))
