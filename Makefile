# Front door for people and CI. Every target installs what it needs first.
#   make deps    install build/test dependencies (apt; root or sudo)
#   make build   Release build; the CLI lands at build/bin/lethe
#   make test    deps + build + every test (ctest), with ctest's summary
#   make bench   deps + build + benchmarks in both OpenBLAS settings (see bench/README.md)
#   make demo    deps + build + `lethe demo` (a fictitious world trained, unlearned, evaluated)
#   make check-includes  build + every file compiled once more without the precompiled header,
#                so a missing #include fails (CI runs it; cmake/no_pch.cmake)
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps build test bench demo configure clean check-includes
DEMO_OUT ?= lethe-demo

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

check-includes: build
	cmake --build $(BUILD_DIR) --target no_pch -j $(JOBS)

bench: build
	bench/run.sh $(BUILD_DIR)

demo: build
	$(BUILD_DIR)/bin/lethe demo --out $(DEMO_OUT)

clean:
	rm -rf $(BUILD_DIR)
