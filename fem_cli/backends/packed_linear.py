"""Linear layers through oneDNN with weights packed once, for float32 inference on a CPU.

A decode step's time goes mostly to its linear layers (matrix products of a few dozen rows by
each weight). torch runs a float32 `linear` on a CPU through MKL's sgemm, which re-reads the
weight in its plain layout every call; oneDNN's matmul over a weight reordered once into its
blocked layout (what torch.compile's CPU backend does with `weight_prepack`) measured 1.3-2.2x
faster here for SmolLM2's shapes at 8-128 rows, the output layer the most (AMD EPYC, 2 cores).
The results are float32 products summed in another order: they differ from MKL's in the last
bits (about 2e-6 on SmolLM2's logits).

The packed copy is made again whenever the weight changes in place (its version counter moves),
so code that edits a model's weights after loading sees its edit. The model must not be trained
while packed: the packed product has no backward pass.

A gated MLP (Llama's and Qwen's `down(silu(gate(x)) * up(x))`) runs as oneDNN post-ops: the
activation inside the gate product and the elementwise product inside the up product, instead
of two more passes over a (rows x intermediate) tensor each (`FusedGatedMLP`, ~11 % of the MLP's
time at prompt-encoding sizes here).

    replaced = pack_linear_layers(model)   # 0 where oneDNN or its packing op is missing
"""

from __future__ import annotations

import torch

# The batch size oneDNN picks the packed layout for; any other number of rows still computes.
ROWS_HINT = 64


def available() -> bool:
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise")
    )


class PackedLinear(torch.nn.Module):
    """`linear`'s forward over a oneDNN-packed copy of its weight; the weight and bias stay the
    module's parameters (state dicts, tied embeddings and weight edits are unaffected)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self._packed: torch.Tensor | None = None
        self._packed_version = -1

    def _packed_weight(self) -> torch.Tensor:
        version = self.weight._version
        if self._packed is None or version != self._packed_version:
            with torch.no_grad():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), ROWS_HINT)
            self._packed_version = version
        return self._packed

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, self._packed_weight(), self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, oneDNN-packed"


class FusedGatedMLP(torch.nn.Module):
    """`down_proj(silu(gate_proj(x)) * up_proj(x))` with the activation and the product fused
    into the packed products. Its children are the MLP's own, so parameter names are kept."""

    def __init__(self, gate_proj: PackedLinear, up_proj: PackedLinear, down_proj: PackedLinear) -> None:
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = gate_proj, up_proj, down_proj

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        gate = torch.ops.mkldnn._linear_pointwise(inputs, self.gate_proj._packed_weight(), self.gate_proj.bias, "swish", [], "")
        hidden = torch.ops.mkldnn._linear_pointwise.binary(inputs, gate, self.up_proj._packed_weight(), self.up_proj.bias, "mul")
        return self.down_proj(hidden)


_SILU = {"SiLU", "SiLUActivation"}  # torch's and transformers' SiLU modules


def _fuse_gated_mlp(mlp: torch.nn.Module) -> FusedGatedMLP | None:
    """The fused form of `mlp`, or None unless it is a gated SiLU MLP over packed layers that
    computes the same as its fused form (checked on a random input: the attribute names alone
    do not say how a model's MLP combines them)."""
    parts = [getattr(mlp, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
    if not all(isinstance(part, PackedLinear) for part in parts) or type(getattr(mlp, "act_fn", None)).__name__ not in _SILU:
        return None
    fused = FusedGatedMLP(*parts)
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(3, parts[0].in_features, generator=generator)
    with torch.inference_mode():
        expected, got = mlp(probe), fused(probe)
    # Relative to the output's scale: random inputs make outputs in the thousands.
    return fused if float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max()) else None


def pack_linear_layers(model: torch.nn.Module) -> int:
    """Replace every float32 `nn.Linear` of a CPU model by a `PackedLinear`, and fuse its gated
    MLPs (`FusedGatedMLP`); the count of linear layers replaced."""
    if not available():
        return 0
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and child.weight.device.type == "cpu" and child.weight.dtype == torch.float32
    ]
    for parent, name, child in targets:
        setattr(parent, name, PackedLinear(child))
    mlps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()]
    for parent, name, child in mlps:
        fused = _fuse_gated_mlp(child)
        if fused is not None:
            setattr(parent, name, fused)
    return len(targets)
