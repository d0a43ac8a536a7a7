#!/usr/bin/env bash
# Installs everything lethe needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are not reinstalled and apt is not even
# called when nothing is missing. Works as root or through sudo.
#
# Why each package is here:
#   build-essential cmake     compiler and build system (C++20, CMake >= 3.25)
#   pkg-config                locates PCRE2, utf8proc and SentencePiece for CMake
#   libtorch-dev              tensors, autograd, BLAS-backed kernels (the model runtime)
#   libopenblas0-openmp       the BLAS libtorch calls; without it reference BLAS is ~16x slower
#   nlohmann-json3-dev        config.json, safetensors headers, index files, run outputs
#   libcli11-dev              the `lethe` command line (subcommands, typed options, --help)
#   libyaml-cpp-dev           YAML run configs (finetune / unlearn) with key.sub=value overrides
#   libpcre2-dev              tokenizer.json regexes with Unicode properties and lookahead (JIT)
#   libutf8proc-dev           Unicode normalization (NFC/NFKC/...) and case mapping for normalizers
#   libsentencepiece-dev      SentencePiece .model tokenizers, and training new BPE models
#   zlib1g-dev                the ZLib membership-inference attack (compressed size, as Python's zlib)
#   libgtest-dev libgmock-dev unit / golden / integration tests
#   libbenchmark-dev          bench/ micro-benchmarks
#   clang libclang-rt-14-dev  libFuzzer targets (tests/fuzz) with ASan/UBSan, and their CI smoke runs
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-openmp
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libpcre2-dev libutf8proc-dev libsentencepiece-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# libtorch calls whatever libblas.so.3 the alternatives system selects. Make sure it is
# OpenBLAS's OpenMP build (installing libopenblas-dev elsewhere would switch it to pthreads,
# and a missing OpenBLAS leaves reference BLAS in place, ~16x slower).
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  target=/usr/lib/$arch/openblas-openmp/$lib
  name=$lib-$arch
  if [ -e "$target" ] && update-alternatives --query "$name" >/dev/null 2>&1; then
    current=$(update-alternatives --query "$name" | awk '/^Value:/{print $2}')
    if [ "$current" != "$target" ]; then
      as_root update-alternatives --set "$name" "$target" >/dev/null
    fi
  fi
done
echo "install-deps: ok"
