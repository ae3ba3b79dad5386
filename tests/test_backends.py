"""The transformers backend held to the generation contract, on the tiny model."""

from __future__ import annotations

import importlib.util
import os

import pytest

from backend_contract import (
    check_answer_stop,
    check_greedy_is_deterministic_across_n,
    check_label_probabilities,
    check_seeded,
    check_shapes,
    label_queries,
    requests_for,
)
from conftest import make_questions
from fem_cli.backends import BackendOptions, choose_backend, create_backend
from fem_cli.backends.base import SamplingSettings
from fem_cli.errors import FemError
from fem_cli.models import resolve_model
from fem_cli.records import Question


@pytest.fixture(scope="module")
def backend(tiny_model):
    hf, why = create_backend("hf", resolve_model(str(tiny_model)), BackendOptions(batch_size=8))
    assert why == "--backend hf"
    yield hf
    hf.close()


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return [Question.model_validate(q) for q in make_questions(10)]


def test_counts_finish_reasons_and_progress(backend, questions):
    check_shapes(backend, requests_for(questions), n=3, max_new_tokens=30)


def test_stops_right_after_the_answer_line(backend, questions):
    outputs = backend.generate(requests_for(questions), SamplingSettings(n=4, max_new_tokens=60))
    # The tiny model's vocabulary holds whole answer lines, so some samples must stop on one.
    assert check_answer_stop(outputs, max_new_tokens=60) > 0


def test_label_probabilities_follow_the_contract(backend, questions):
    # Batched and left-padded by the backend, read unbatched by the contract's reference.
    check_label_probabilities(backend, label_queries(questions), backend.model, backend.tokenizer, tolerance=1e-4)


def test_seeded_and_independent_of_batch_neighbours(backend, questions):
    check_seeded(backend, requests_for(questions[:6]))


def test_greedy_samples_are_identical(backend, questions):
    check_greedy_is_deterministic_across_n(backend, requests_for(questions))


def test_stop_strings_cut_the_text(backend, questions):
    requests = requests_for(questions[:4])
    plain = backend.generate(requests, SamplingSettings(n=1, temperature=1.0, max_new_tokens=30, stop_at_answer=False))
    # Stop on a piece of the first completion: it must come back cut before that piece.
    text = plain[0][0].text
    stop = text[5:9]
    assert len(stop) == 4
    cut = backend.generate(requests, SamplingSettings(n=1, temperature=1.0, max_new_tokens=30, stop=(stop,), stop_at_answer=False))
    assert cut[0][0].text == text[: text.find(stop)]
    assert cut[0][0].finish_reason == "stop"


def test_unknown_backend_is_refused():
    with pytest.raises(FemError, match="unknown backend 'vlm' \\(did you mean 'vllm'\\?\\)"):
        choose_backend("vlm")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_environment_is_set_only_while_the_engine_starts(tiny_model, monkeypatch):
    from fem_cli.backends.vllm import _engine_environment

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "9")  # the user's own setting wins and stays
    with _engine_environment(resolve_model(str(tiny_model))):
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
        assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "9"
    assert "HF_HUB_OFFLINE" not in os.environ and "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "9"


def test_auto_falls_back_to_hf_and_vllm_says_how_to_install(tiny_model):
    assert choose_backend("auto") == ("hf", "auto: vLLM is not installed")
    with pytest.raises(FemError, match="pip install 'fem\\[vllm\\]'"):
        create_backend("vllm", resolve_model(str(tiny_model)), BackendOptions())


@pytest.mark.parametrize("dead_columns_to_drop", [1, 1000])
def test_greedy_matches_transformers_generate_prompt_by_prompt(tiny_model, questions, monkeypatch, dead_columns_to_drop):
    """The shared-context prefill, in-place cache, continuous batching (rows leaving, prompts
    joining, dead columns dropped) change nothing: greedy text equals `model.generate` run on
    each full prompt alone."""
    import torch

    from fem_cli.backends import hf
    from fem_cli.prompts import prompt_token_ids, render

    monkeypatch.setattr(hf, "DEAD_COLUMNS_TO_DROP", dead_columns_to_drop)
    # Two prompts (4 rows) at a time out of 6: prompts join as others finish.
    sharp, _ = create_backend("hf", resolve_model(str(tiny_model)), BackendOptions(batch_size=4))
    tokenizer, model = sharp.tokenizer, sharp.model
    # The stock init (std 0.02) makes a near-constant model whose greedy text ignores positions
    # and cache contents; weights of std 3/sqrt(fan_in) make every token depend on them.
    torch.manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.normal_(0, 3 / weight.shape[-1] ** 0.5)
    requests = requests_for(questions[:6])
    # A stop string ends rows at different steps, so finished rows leave the cache mid-batch.
    settings = SamplingSettings(n=2, temperature=0.0, max_new_tokens=20, stop=("e",), stop_at_answer=False)
    ours = sharp.generate(requests, settings)
    assert len({len(completions[0].text) for completions in ours}) > 2
    for request, completions in zip(requests, ours):
        ids = prompt_token_ids(tokenizer, render(tokenizer, list(request.messages)))
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=20,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(sharp.eos_ids))
        expected = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).split("e")[0]
        assert [c.text for c in completions] == [expected, expected]
    sharp.close()


def test_prompts_share_their_context_but_not_their_question(backend, questions):
    requests = requests_for(questions[:2])
    (first, first_shared), (second, second_shared) = (backend._encode(r) for r in requests)
    assert 0 < first_shared < len(first) and first_shared == second_shared
    assert first[:first_shared] == second[:second_shared]
    question = backend.tokenizer.decode(first[first_shared:])
    assert question.startswith("Question: What is 2 plus 5?")


def test_sampling_follows_the_distribution_and_skips_zero_probability_tokens():
    import torch

    from fem_cli.backends.hf import HFBackend

    probs = torch.tensor([0.0, 0.5, 0.0, 0.3, 0.2, 0.0])
    logits = probs.log().expand(4000, -1)
    generators = [torch.Generator().manual_seed(seed) for seed in range(4000)]
    tokens = HFBackend._sample(logits, generators, SamplingSettings(temperature=1.0))
    frequencies = torch.bincount(tokens, minlength=6) / 4000
    assert frequencies[[0, 2, 5]].sum() == 0
    assert torch.allclose(frequencies, probs, atol=0.03)
    # top_p 0.75 keeps the two most likely tokens (0.5 + 0.3), renormalized to 5/8 and 3/8.
    nucleus = HFBackend._sample(logits, generators, SamplingSettings(temperature=1.0, top_p=0.75))
    frequencies = torch.bincount(nucleus, minlength=6) / 4000
    assert frequencies[4] == 0 and abs(frequencies[1] - 5 / 8) < 0.03


def test_continuous_batch_keeps_every_rows_own_sequence(monkeypatch):
    """Rows join, leave and have dead columns dropped; through it all, each row's unmasked cache
    columns hold exactly its prompt and its generated tokens, in order (the shared context is
    kept once, outside the rows: prefix.py)."""
    import torch

    from fem_cli.backends import hf

    monkeypatch.setattr(hf, "DEAD_COLUMNS_TO_DROP", 1)
    batch = hf._DecodeBatch(num_layers=1, max_rows=5, context_length=2, capacity=4)
    expected: dict[int, list[float]] = {}

    def add(tags_and_prompts: list[tuple[int, list[float]]]) -> None:
        width = max(len(prompt) for _, prompt in tags_and_prompts)
        states = torch.tensor([[0.0] * (width - len(p)) + p for _, p in tags_and_prompts])[:, None, :, None]
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for _, p in tags_and_prompts])
        rows = [hf._Row(prompt=tag, sample=0, generator=torch.Generator()) for tag, _ in tags_and_prompts]
        batch.add(rows, [(states, states.clone())], mask, torch.zeros(len(rows), 5))
        for tag, prompt in tags_and_prompts:
            expected[tag] = list(prompt)

    def step() -> None:
        new = torch.tensor([100.0 * row.prompt + len(expected[row.prompt]) for row in batch.rows])[:, None, None, None]
        batch.layers[0].update(new, new.clone())
        batch.attention = torch.cat([batch.attention, batch.attention.new_ones(len(batch.rows), 1)], dim=1)
        for row in batch.rows:
            expected[row.prompt].append(100.0 * row.prompt + len(expected[row.prompt]))

    def check() -> None:
        keys = batch.layers[0].keys
        assert keys.shape[:3] == (len(batch.rows), 1, batch.attention.shape[1])
        for slot, row in enumerate(batch.rows):
            assert keys[slot, 0, batch.attention[slot].bool(), 0].tolist() == expected[row.prompt]

    add([(1, [11.0, 12.0, 13.0]), (2, [21.0])])
    for _ in range(3):
        step()
    check()
    add([(3, [31.0, 32.0])])  # joins a running batch, its prompt ending at the current column
    step()
    check()
    batch.keep([1, 2])  # prompt 1 leaves, prompt 3 takes its slot: the columns of its longer prompt are dead for the others
    check()
    assert batch.attention.shape[1] < 3 + 4 + 1
    step()
    batch.keep([1])
    add([(4, [41.0]), (5, [51.0, 52.0])])
    for _ in range(6):  # past the initial capacity: the buffers grow
        step()
    check()
    batch.keep([])
    add([(6, [61.0, 62.0, 63.0, 64.0, 65.0])])  # an empty batch takes a prompt of any width
    step()
    check()
    add([(7, [71.0, 72.0]), (8, [81.0]), (9, [91.0, 92.0]), (10, [101.0])])
    step()
    # Two rows leave from the middle: the last two rows take their slots, the others stay put.
    moved = batch.keep([1, 3, 4])
    assert moved.tolist() == [3, 1, 4] and [row.prompt for row in batch.rows] == [9, 7, 10]
    check()
    step()
    check()
