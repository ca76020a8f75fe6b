# kb-lora pipeline. `make test` runs the tests; `make data` regenerates the data sets.
CARGO ?= cargo
RUN = $(CARGO) run --release -q -p
GGUF ?= $(shell scripts/fetch-model.sh 0.5b 2>/dev/null)
MODEL_FLAGS ?= --gguf $(GGUF)

.PHONY: test data train-set eval-set model train evaluate diagnose fix package demo

test:
	$(CARGO) test --workspace

data: train-set eval-set
train-set:
	$(RUN) gen-train-set
eval-set:
	$(RUN) gen-eval-set

model:
	scripts/fetch-model.sh 0.5b

train:
	$(RUN) train-qwen-lora -- $(MODEL_FLAGS) --output qwen_lora_output

generate:
	$(RUN) qwen-generate -- $(MODEL_FLAGS) --adapter qwen_lora_output/final_model --prompt "VPN 怎麼連線?"

package:
	$(RUN) package-lora -- --adapter qwen_lora_output/final_model --out qwen-lora-v1.tar.gz

# The main job (evaluation and diagnosis binaries are still being built; see the open issues).
demo: data model train generate package
