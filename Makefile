# kb-lora pipeline.
#   make test                 the test suite (what CI runs)
#   make demo                 everything on a real model: build, model, data, train, evaluate base and
#                             adapter, diagnose, package, results table (0.5B, about 20-30 min on 2 cores)
#   make demo MODEL=1.5b      the same with the 1.5B model (the reference's size)
#   make demo PRESET=reference   the reference's recipe (LoRA on q/k/v/o only) instead of the default
#   make iterate              diagnose -> targeted samples -> retrain -> evaluate the new adapter
# Model choice: scripts/model-flags.sh (hub cache, hub, else the PyPI-packaged GGUF); give your own
# with KB_LORA_MODEL_FLAGS='--gguf FILE' or '--model DIR'.
CARGO ?= cargo
MODEL ?= 0.5b
# Training recipe: default (data/train.toml, LoRA on every linear layer) or reference (data/train-reference.toml).
PRESET ?= default
TRAIN_CONFIG = $(if $(filter reference,$(PRESET)),data/train-reference.toml,data/train.toml)
BIN = target/release
OUT = qwen_lora_output-$(MODEL)$(if $(filter reference,$(PRESET)),-reference)
REPORTS = test_outputs/$(MODEL)$(if $(filter reference,$(PRESET)),-reference)
# Held-out questions worded unlike the pools (data/probe/README.md), evaluated beside the eval set.
PROBE = data/probe/probe_qwen.jsonl
FLAGS_FILE = models/$(MODEL).flags
MODEL_FLAGS = $(shell cat $(FLAGS_FILE))
FINAL_TRAIN = $(OUT)/train_qwen_final.jsonl
# Steps run in the order written, one at a time.
.NOTPARALLEL:

.PHONY: test build data train-set eval-set model train evaluate-base evaluate evaluate-probe diagnose fix \
	retrain evaluate-v2 iterate package results demo bench

test:
	$(CARGO) test --workspace

build:
	$(CARGO) build --release --workspace --bins

data: train-set eval-set
train-set: build
	$(BIN)/gen-train-set
eval-set: build
	$(BIN)/gen-eval-set

# Finds (and downloads once) the base model; the flags are kept in $(FLAGS_FILE).
model:
	@mkdir -p models
	scripts/model-flags.sh $(MODEL) > $(FLAGS_FILE).tmp && mv $(FLAGS_FILE).tmp $(FLAGS_FILE)
	@echo "model flags: $$(cat $(FLAGS_FILE))"
$(FLAGS_FILE):
	$(MAKE) model MODEL=$(MODEL)

train: build $(FLAGS_FILE)
	$(BIN)/train-qwen-lora --config $(TRAIN_CONFIG) $(MODEL_FLAGS) --output $(OUT)

evaluate-base: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --no-adapter --report $(REPORTS)/base.json
# Post-processing retrieves over data/train_qwen_v1.jsonl (the adapter's training set); no rules file.
evaluate: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)/final_model --report $(REPORTS)/adapter.json
evaluate-probe: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)/final_model --eval $(PROBE) --report $(REPORTS)/adapter_probe.json

# Needs the adapter's report (make evaluate, which make demo runs).
diagnose: build $(REPORTS)/adapter.json
	$(BIN)/diagnose-errors --from-report $(REPORTS)/adapter.json --out $(OUT)/error_analysis.json
$(REPORTS)/adapter.json:
	$(MAKE) evaluate MODEL=$(MODEL)
fix: build
	$(BIN)/fix-remaining-issues --analysis $(OUT)/error_analysis.json --out $(FINAL_TRAIN)
retrain: build $(FLAGS_FILE)
	$(BIN)/train-qwen-lora --config $(TRAIN_CONFIG) $(MODEL_FLAGS) --train $(FINAL_TRAIN) --output $(OUT)-v2
evaluate-v2: build $(FLAGS_FILE)
	$(BIN)/test-qwen-lora $(MODEL_FLAGS) --adapter $(OUT)-v2/final_model --train $(FINAL_TRAIN) --report $(REPORTS)/adapter_v2.json
iterate: build diagnose fix retrain evaluate-v2
	$(BIN)/results-table --report adapter=$(REPORTS)/adapter.json --report adapter-v2=$(REPORTS)/adapter_v2.json \
		--train $(OUT)/summary.json --train $(OUT)-v2/summary.json

package: build $(FLAGS_FILE)
	$(BIN)/package-lora --adapter $(OUT)/final_model --report $(REPORTS)/adapter.json \
		--train data/train_qwen_v1.jsonl --eval data/eval_qwen_v1.jsonl --out qwen-lora-$(MODEL).tar.gz \
		$(if $(filter --gguf,$(firstword $(MODEL_FLAGS))),--base-gguf $(word 2,$(MODEL_FLAGS)))

results: build
	$(BIN)/results-table --report base=$(REPORTS)/base.json --report adapter=$(REPORTS)/adapter.json \
		--report adapter-probe=$(REPORTS)/adapter_probe.json --train $(OUT)/summary.json

demo: build model data train evaluate-base evaluate evaluate-probe diagnose package results

bench: build $(FLAGS_FILE)
	scripts/bench.sh
