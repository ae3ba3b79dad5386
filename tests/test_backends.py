"""The transformers backend held to the generation contract, on the tiny model."""

from __future__ import annotations

import importlib.util

import pytest

from backend_contract import (
    check_answer_stop,
    check_greedy_is_deterministic_across_n,
    check_seeded,
    check_shapes,
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
def test_auto_falls_back_to_hf_and_vllm_says_how_to_install(tiny_model):
    assert choose_backend("auto") == ("hf", "auto: vLLM is not installed")
    with pytest.raises(FemError, match="pip install 'fem\\[vllm\\]'"):
        create_backend("vllm", resolve_model(str(tiny_model)), BackendOptions())
