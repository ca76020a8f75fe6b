#!/usr/bin/env bash
# The side-by-side benchmark in one command: builds `bench` (release), times the Python reference
# (transformers + PEFT, llama-cpp-python) when its packages are installed, then runs `bench` on the
# same GGUF and data, prints the report and writes docs/BENCHMARKS.md (date and machine included).
# Run it on a quiet machine: it takes 10-20 minutes with the reference.
#
#   scripts/bench.sh                              # everything, 0.5B GGUF, report to docs/BENCHMARKS.md
#   scripts/bench.sh --only decode train-step     # extra arguments go to `bench` (see bench --help)
#   GGUF=models/qwen2.5-coder-1.5b-instruct.gguf REFERENCE_ARGS="--matmul-dims 1536,256,8960" \
#       scripts/bench.sh --matmul-dims 1536,256,8960     # 1.5B: both matmul parts on its shapes
#   PYTHON=/path/to/venv/bin/python scripts/bench.sh    # the Python with torch/transformers/peft/gguf
#   SKIP_REFERENCE=1 scripts/bench.sh             # ours only; reference figures from PERFORMANCE.md
#   REFERENCE_ARGS="--micro-steps 2 --skip llama" scripts/bench.sh
#   OUT=/tmp/b.md scripts/bench.sh                # write the report elsewhere
#   REF_JSON=/tmp/ref.json scripts/bench.sh --json /tmp/ours.json   # keep both figure files
#
# The reference needs `pip install torch transformers peft gguf` (train and generate parts) and
# `pip install llama-cpp-python` (compiles llama.cpp, ~10 minutes); each missing piece is skipped
# with a message and its figures fall back to PERFORMANCE.md's, labelled as such.
set -euo pipefail
cd "$(dirname "$0")/.."

GGUF=${GGUF:-models/qwen2.5-coder-0.5b-instruct.gguf}
OUT=${OUT:-docs/BENCHMARKS.md}
PYTHON=${PYTHON:-python3}
if [[ ! -f $GGUF ]]; then
    echo "error: $GGUF not found; run scripts/fetch-model.sh 0.5b, or set GGUF=FILE" >&2
    exit 1
fi

cargo build --release -q -p bench
BENCH=${CARGO_TARGET_DIR:-target}/release/bench

if [[ -n ${REF_JSON:-} ]]; then
    ref_json=$REF_JSON # kept, for `bench --results R.json --reference $REF_JSON` later
else
    ref_json=$(mktemp --suffix .json)
    trap 'rm -f "$ref_json"' EXIT
fi
ref_flag=()
if [[ -n ${SKIP_REFERENCE:-} ]]; then
    echo "skipping the Python reference (SKIP_REFERENCE is set)" >&2
elif ! command -v "$PYTHON" >/dev/null; then
    echo "skipping the Python reference: no $PYTHON (set PYTHON=/path/to/python)" >&2
else
    # shellcheck disable=SC2086 # REFERENCE_ARGS is a list of flags
    if "$PYTHON" scripts/bench_reference.py --gguf "$GGUF" --out "$ref_json" ${REFERENCE_ARGS:-}; then
        ref_flag=(--reference "$ref_json")
    else
        echo "the Python reference failed (messages above); using PERFORMANCE.md's figures" >&2
    fi
fi

"$BENCH" --gguf "$GGUF" "${ref_flag[@]}" --out "$OUT" "$@"
