"""Training throughput of `fem finetune` against TRL's SFTTrainer, same examples, same run.

Both fine-tune the same model on the same ARC-Easy examples (the project's prompt, a short
synthetic rationale and an "Answer: X" line) with completion-only loss, the same batch size,
learning rate, epochs, precision and seed. Throughput is non-padding tokens of one pass over the
examples x epochs, divided by the Trainer's train_runtime (model loading and tokenization excluded).
fem sends only completion positions through the LM head and groups batches by length; on CPU,
TRL 1.16 scores every position in chunks (its compact path needs Triton), so the gap is wider
there than on a GPU. TRL is a bench-only dependency: `.venv/bin/pip install trl -c constraints.txt`
(a constraints file pinning your torch, so pip keeps it).

    .venv/bin/python bench/finetune_throughput.py            # SmolLM2-135M (`fem models prepare smollm2`)
    .venv/bin/python bench/finetune_throughput.py --tiny     # a 2-layer model: checks the bench in seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fem_cli.jsonl import read_jsonl, write_jsonl
from fem_cli.models import load_tokenizer, resolve_model
from fem_cli.prompts import PromptTemplate, build_messages
from fem_cli.records import Question, TrainExample
from fem_cli.train.config import FinetuneConfig
from fem_cli.train.finetune import MARKER, has_accelerator, run_finetune

REPO = Path(__file__).resolve().parents[1]


def build_examples(data_dir: Path, count: int) -> list[TrainExample]:
    questions = read_jsonl(data_dir / "arc_easy" / "train.jsonl", Question)[:count]
    examples = []
    for question in questions:
        choice = question.choices[question.labels.index(question.answer)]
        rationale = (
            f"The question asks: {question.question} Comparing the choices, \"{choice}\" is the one "
            f"that fits what is asked, and the others do not.\nAnswer: {question.answer}"
        )
        examples.append(
            TrainExample(
                question_id=question.id, prompt=build_messages(question, PromptTemplate()),
                completion=rationale, sampler="bench", stage="self",
            )
        )
    return examples


def tiny_model(folder: Path, tokenizer_source: str) -> str:
    """A 2-layer Llama with the given model's tokenizer (random weights: for checking the bench)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(tokenizer_source)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run_fem(model: str, train: Path, out: Path, args: argparse.Namespace) -> dict:
    cfg = FinetuneConfig(
        model=model, train=train, out=out, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed,
        precision="bf16" if args.bf16 else "fp32",
    )
    record = json.loads((run_finetune(cfg) / MARKER).read_text())
    tokens = record["counts"]["total_tokens_per_epoch"] * args.epochs
    runtime = record["training"]["runtime_s"]
    return {"tokens": tokens, "completion_tokens": record["counts"]["completion_tokens_per_epoch"] * args.epochs,
            "runtime_s": runtime, "tokens_per_s": tokens / runtime, "final_loss": record["training"]["final_loss"]}


def run_trl(model: str, examples: list[TrainExample], out: Path, args: argparse.Namespace) -> dict:
    try:
        from trl import SFTConfig, SFTTrainer
    except ImportError:
        raise SystemExit("TRL is needed for the comparison: .venv/bin/pip install trl -c <constraints>") from None
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    dataset = Dataset.from_list([
        {"prompt": [m.model_dump() for m in e.prompt], "completion": [{"role": "assistant", "content": e.completion}]}
        for e in examples
    ])
    config = SFTConfig(
        output_dir=str(out), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed, bf16=args.bf16,
        completion_only_loss=True, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=not has_accelerator(), dataloader_pin_memory=has_accelerator(),
    )
    tokenizer = load_tokenizer(model)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model), args=config, train_dataset=dataset,
        processing_class=tokenizer,
    )
    train_set = trainer.train_dataset
    tokens = sum(len(ids) for ids in train_set["input_ids"]) * args.epochs
    completion = sum(label != -100 for labels in train_set["labels"] for label in labels) * args.epochs
    result = trainer.train()
    runtime = result.metrics["train_runtime"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"tokens": tokens, "completion_tokens": completion, "runtime_s": runtime,
            "tokens_per_s": tokens / runtime, "final_loss": losses[-1] if losses else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="Model alias or folder (default: the prepared SmolLM2).")
    parser.add_argument("--tiny", action="store_true", help="Use a 2-layer model with --model's tokenizer instead.")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="Normalized data folder.")
    parser.add_argument("--examples", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision for both.")
    args = parser.parse_args()

    examples = build_examples(args.data, args.examples)
    with tempfile.TemporaryDirectory(prefix="fem-bench-") as tmp:
        work = Path(tmp)
        model = resolve_model(args.model).path
        if args.tiny:
            model = tiny_model(work / "tiny", model)
        train = work / "train.jsonl"
        write_jsonl(train, examples)
        fem = run_fem(model, train, work / "fem", args)
        trl = run_trl(model, examples, work / "trl", args)

    print(f"\nmodel {args.model}{' (tiny)' if args.tiny else ''}, {len(examples)} examples, epochs {args.epochs}, "
          f"batch {args.batch_size}, {'bf16' if args.bf16 else 'fp32'}")
    print(f"{'':6} {'tokens':>8} {'completion':>10} {'runtime s':>10} {'tokens/s':>10} {'final loss':>10}")
    for name, row in (("fem", fem), ("trl", trl)):
        print(f"{name:6} {row['tokens']:>8} {row['completion_tokens']:>10} {row['runtime_s']:>10.1f} "
              f"{row['tokens_per_s']:>10.0f} {row['final_loss']:>10.4f}")
    print(f"fem / trl tokens/s: {fem['tokens_per_s'] / trl['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
