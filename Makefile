# kb-lora pipeline.
#   make test                 the test suite (what CI runs)
#   make demo                 everything on a real model: build, model, data, train, evaluate base and
#                             adapter, diagnose, package, results table (0.5B, about 20-30 min on 2 cores)
#   make demo MODEL=1.5b      the same with the 1.5B model (the reference's size)
#   make demo PRESET=reference   the reference's recipe (LoRA on q/k/v/o only) instead of the default
#   make demo KB=path/to/kb.jsonl  everything from that file alone: questions synthesized on this
#                             machine (synth-questions, GEN=0.5b|1.5b picks the generator), then the
#                             same steps; a probe.toml beside the KB is evaluated as the probe set
#   make iterate              diagnose -> targeted samples -> retrain -> evaluate the new adapter
#   make serve                the demo's adapter behind an OpenAI-compatible API and a chat page on
#                             http://127.0.0.1:8000 (PORT=, SERVE_FLAGS= for more, e.g. --api-key)
# Model choice: scripts/model-flags.sh (hub cache, hub, else the PyPI-packaged GGUF); give your own
# with KB_LORA_MODEL_FLAGS='--gguf FILE' or '--model DIR'.
CARGO ?= cargo
MODEL ?= 0.5b
# Training recipe: default (data/train.toml, LoRA on every linear layer) or reference (data/train-reference.toml).
PRESET ?= default
TRAIN_CONFIG = $(if $(filter reference,$(PRESET)),data/train-reference.toml,data/train.toml)
BIN = target/release
# Your own knowledge base (empty: the shipped data/kb.jsonl with its curated data/questions.toml).
KB ?=
# The model that writes questions for KB= (the 1.5B writes better ones for a 0.5B run, slower).
GEN ?= $(MODEL)
KB_NAME = $(if $(KB),-$(notdir $(patsubst %/,%,$(dir $(abspath $(KB))))))
OUT = qwen_lora_output-$(MODEL)$(if $(filter reference,$(PRESET)),-reference)$(KB_NAME)
REPORTS = test_outputs/$(MODEL)$(if $(filter reference,$(PRESET)),-reference)$(KB_NAME)
KB_FILE = $(if $(KB),$(KB),data/kb.jsonl)
QUESTIONS = $(if $(KB),$(OUT)/questions.toml,data/questions.toml)
TRAIN_SET = $(if $(KB),$(OUT)/train.jsonl,data/train_qwen_v1.jsonl)
EVAL_SET = $(if $(KB),$(OUT)/eval.jsonl,data/eval_qwen_v1.jsonl)
DATA_FLAGS = --kb $(KB_FILE) --questions $(QUESTIONS)
# Held-out questions worded unlike the pools (data/probe/README.md), evaluated beside the eval set;
# with KB=, the probe.toml beside the KB when there is one.
KB_PROBE = $(wildcard $(dir $(KB_FILE))probe.toml)
PROBE = $(if $(KB),$(if $(KB_PROBE),$(OUT)/probe.jsonl),data/probe/probe_qwen.jsonl)
FLAGS_FILE = models/$(MODEL).flags
MODEL_FLAGS = $(shell cat $(FLAGS_FILE))
GEN_FLAGS_FILE = models/$(GEN).flags
FINAL_TRAIN = $(OUT)/train_qwen_final.jsonl
# Steps run in the order written, one at a time.
.NOTPARALLEL:

.PHONY: test build questions data train-set eval-set probe-set model train evaluate-base evaluate evaluate-probe \
	diagnose fix retrain evaluate-v2 iterate package results demo bench serve

test:
	$(CARGO) test --workspace

build:
	$(CARGO) build --release --workspace --bins

# With KB=: questions.toml synthesized from the KB alone (again only when the KB is newer; its
# answers are cached beside it, so a rerun after editing one entry regenerates only that entry).
questions: $(if $(KB),$(QUESTIONS))
$(OUT)/questions.toml: $(KB_FILE) | build
	@test -s $(GEN_FLAGS_FILE) || $(MAKE) model MODEL=$(GEN)
	@mkdir -p $(OUT)
	$(BIN)/synth-questions $$(cat $(GEN_FLAGS_FILE)) --kb $(KB_FILE) --out $@ --overwrite
data: train-set eval-set probe-set
train-set: build questions
	@mkdir -p $(dir $(TRAIN_SET))
	$(BIN)/gen-train-set $(DATA_FLAGS) $(if $(KB),--per-entry 20) --out $(TRAIN_SET)
eval-set: build questions
	$(BIN)/gen-eval-set $(DATA_FLAGS) --train $(TRAIN_SET) --out $(EVAL_SET)
probe-set: build
	$(if $(and $(KB),$(PROBE)),$(BIN)/gen-eval-set --kb $(KB_FILE) --probe $(KB_PROBE) --train $(TRAIN_SET) --out $(PROBE))

# Finds (and downloads once) the base model; the flags are kept in $(FLAGS_FILE).
model:
	@mkdir -p models
	scripts/model-flags.sh $(MODEL) > $(FLAGS_FILE).tmp && mv $(FLAGS_FILE).tmp $(FLAGS_FILE)
	@echo "model flags: $$(cat $(FLAGS_FILE))"
$(FLAGS_FILE):
	$(MAKE) model MODEL=$(MODEL)

train: build $(FLAGS_FILE)
	$(BIN)/train-qwen-lora --config $(TRAIN_CONFIG) $(MODEL_FLAGS) --train $(TRAIN_SET) --eval $(EVAL_SET) \
		--output $(OUT)

EVAL_FLAGS = --kb $(KB_FILE) --train $(TRAIN_SET)
evaluate-base: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --no-adapter $(EVAL_FLAGS) --eval $(EVAL_SET) --report $(REPORTS)/base.json
# Post-processing retrieves over the adapter's training set; no rules file.
evaluate: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)/final_model $(EVAL_FLAGS) --eval $(EVAL_SET) \
		--report $(REPORTS)/adapter.json
evaluate-probe: build $(FLAGS_FILE)
	$(if $(PROBE),$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)/final_model $(EVAL_FLAGS) --eval $(PROBE) \
		--report $(REPORTS)/adapter_probe.json,@echo "no probe.toml beside $(KB_FILE): no probe set to evaluate")

# Needs the adapter's report (make evaluate, which make demo runs).
diagnose: build $(REPORTS)/adapter.json
	$(BIN)/diagnose-errors --from-report $(REPORTS)/adapter.json $(DATA_FLAGS) --eval $(EVAL_SET) \
		--out $(OUT)/error_analysis.json
$(REPORTS)/adapter.json:
	$(MAKE) evaluate MODEL=$(MODEL)
fix: build
	$(BIN)/fix-remaining-issues --analysis $(OUT)/error_analysis.json $(DATA_FLAGS) --train $(TRAIN_SET) \
		--eval $(EVAL_SET) --out $(FINAL_TRAIN)
retrain: build $(FLAGS_FILE)
	$(BIN)/train-qwen-lora --config $(TRAIN_CONFIG) $(MODEL_FLAGS) --train $(FINAL_TRAIN) --eval $(EVAL_SET) \
		--output $(OUT)-v2
evaluate-v2: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)-v2/final_model --kb $(KB_FILE) --train $(FINAL_TRAIN) \
		--eval $(EVAL_SET) --report $(REPORTS)/adapter_v2.json
iterate: build diagnose fix retrain evaluate-v2
	$(BIN)/results-table --report adapter=$(REPORTS)/adapter.json --report adapter-v2=$(REPORTS)/adapter_v2.json \
		--train $(OUT)/summary.json --train $(OUT)-v2/summary.json

package: build $(FLAGS_FILE)
	$(BIN)/package-lora --adapter $(OUT)/final_model --report $(REPORTS)/adapter.json \
		--train $(TRAIN_SET) --eval $(EVAL_SET) --out qwen-lora-$(MODEL)$(KB_NAME).tar.gz \
		$(if $(filter --gguf,$(firstword $(MODEL_FLAGS))),--base-gguf $(word 2,$(MODEL_FLAGS)))

results: build
	$(BIN)/results-table --report base=$(REPORTS)/base.json --report adapter=$(REPORTS)/adapter.json \
		$(if $(PROBE),--report adapter-probe=$(REPORTS)/adapter_probe.json) --train $(OUT)/summary.json

demo: build model questions data train evaluate-base evaluate evaluate-probe diagnose package results

PORT ?= 8000
SERVE_FLAGS ?=
serve: build $(FLAGS_FILE)
	$(BIN)/serve-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)/final_model $(EVAL_FLAGS) --port $(PORT) $(SERVE_FLAGS)

bench: build $(FLAGS_FILE)
	scripts/bench.sh
