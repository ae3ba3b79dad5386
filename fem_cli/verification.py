"""Verified rationales: does a hinted rationale's answer stand without the hint?

The reward 1[y_hat = y*] of a hinted draw reads y_hat with the hint in the prompt, so a rationale
whose reasoning points elsewhere still "ends on the hinted label". Verification reads y_hat the way
the trained model will meet it: one forward pass over the hint-free prompt + the completion up to
its final answer marker gives the label distribution there (the backend's `label_probs`
capability); the sample is verified when its argmax is the gold. An un-hinted sample is verified by
its own reward.

    samples = verify(samples, backend)    # sets unhinted_label_probs and verified
    verification_summary(samples)         # {"pps/hinted": {"correct": 40, "verified": 13, ...}}
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from fem_cli.backends.base import LABEL_PROBS, GenerationBackend, LabelQuery, require
from fem_cli.records import Sample


def verify(samples: Sequence[Sample], backend: GenerationBackend | None) -> list[Sample]:
    """`samples` with `verified` set; `backend` None: none of them is hinted (the reference
    sampler's), so each is verified by its reward and nothing is read."""
    to_read = [i for i, sample in enumerate(samples) if sample.hinted and sample.reward]
    read: dict[int, list[float] | None] = {}
    if backend is not None:
        require(backend, LABEL_PROBS, "--verify")
        probabilities = backend.label_probabilities(
            [LabelQuery(samples[i].train_prompt, samples[i].text, samples[i].labels) for i in to_read]
        )
        read = dict(zip(to_read, probabilities))
    elif to_read:
        raise ValueError("hinted samples are verified by reading them with a backend; none was given")
    verified = []
    for i, sample in enumerate(samples):
        if i in read:
            probs = read[i]
            # Labels that no single token tells apart cannot be read: not verified.
            ok = probs is not None and max(range(len(probs)), key=probs.__getitem__) == sample.labels.index(sample.gold)
            verified.append(sample.model_copy(update={"unhinted_label_probs": probs, "verified": ok}))
        else:
            verified.append(sample.model_copy(update={"verified": bool(sample.reward)}))
    return verified


def verification_summary(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    """Per `sampler/stage`: correct samples, how many of them are verified, and the share."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"correct": 0, "verified": 0})
    for sample in samples:
        entry = counts[f"{sample.sampler}/{sample.stage}"]
        if sample.reward:
            entry["correct"] += 1
            entry["verified"] += bool(sample.verified)
    return {
        key: {**entry, "verified_share": entry["verified"] / entry["correct"] if entry["correct"] else 0.0}
        for key, entry in counts.items()
    }
