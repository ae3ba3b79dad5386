"""The hf backend's oneDNN-packed linear layers compute what `nn.Linear` computes (to float32
rounding), follow in-place weight edits, and leave the model's parameters as they were."""

from __future__ import annotations

import pytest
import torch

from fem_cli.backends.packed_linear import FusedGatedMLP, PackedLinear, available, pack_linear_layers
from fem_cli.models import load_model

pytestmark = pytest.mark.skipif(not available(), reason="torch built without oneDNN")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [1, 5, 64, 130])
def test_packed_linear_matches_linear(bias, rows):
    torch.manual_seed(rows)
    linear = torch.nn.Linear(96, 200, bias=bias)
    packed = PackedLinear(linear)
    inputs = torch.randn(rows, 3, 96)
    with torch.inference_mode():
        assert packed(inputs).shape == (rows, 3, 200)
        torch.testing.assert_close(packed(inputs), linear(inputs), rtol=1e-5, atol=1e-5)
        # A non-contiguous input (a transposed view) is read as what it holds.
        view = torch.randn(rows, 96, 3).transpose(1, 2)
        torch.testing.assert_close(packed(view), linear(view), rtol=1e-5, atol=1e-5)


def test_an_in_place_weight_edit_is_seen():
    linear = torch.nn.Linear(32, 16)
    packed = PackedLinear(linear)
    inputs = torch.randn(4, 32)
    with torch.inference_mode():
        before = packed(inputs)
    with torch.no_grad():
        linear.weight.mul_(3.0)
    with torch.inference_mode():
        after = packed(inputs)
        torch.testing.assert_close(after, linear(inputs), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


def test_a_packed_model_gives_the_same_logits_and_keeps_its_parameters(tiny_model):
    reference, model = load_model(str(tiny_model)), load_model(str(tiny_model))
    state = {name: value.clone() for name, value in model.state_dict().items()}
    linears = sum(isinstance(module, torch.nn.Linear) for module in model.modules())
    assert pack_linear_layers(model) == linears > 0
    assert not any(type(module) is torch.nn.Linear for module in model.modules())
    assert sum(isinstance(module, FusedGatedMLP) for module in model.modules()) == model.config.num_hidden_layers
    ids = torch.randint(0, model.config.vocab_size, (3, 12))
    with torch.inference_mode():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())


class _GateOnUp(torch.nn.Module):
    """Named like a gated MLP, combined the other way round: silu(up) * gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = torch.nn.Linear(16, 32), torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)
        self.act_fn = torch.nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.up_proj(x)) * self.gate_proj(x))


def test_only_an_mlp_that_computes_the_fused_form_is_fused():
    model = torch.nn.Sequential(_GateOnUp())
    reference = _GateOnUp()
    reference.load_state_dict(model[0].state_dict())
    assert pack_linear_layers(model) == 3
    assert type(model[0]) is _GateOnUp  # left as it was, its layers packed
    inputs = torch.randn(5, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(inputs), reference(inputs), rtol=1e-5, atol=1e-5)
