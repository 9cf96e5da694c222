# Refuge — top-level wrapper around CMake. See README.md.
#   make          build (Debug) into build/
#   make check    install missing dependencies, build, run every test (ctest)
#   make demo     a running deployment and a failover drill
#   make bench    benchmarks; regenerates docs/benchmarks.md
#   make fuzz     libFuzzer targets (clang) into build-fuzz/, short runs on the seed corpus
#   make asan     the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
BUILD ?= build
BUILD_TYPE ?= Debug
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 20

.PHONY: all build check test deps demo bench fuzz fuzz-run asan soak up down clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j1

check: deps
	@$(MAKE) --no-print-directory test

asan:
	@$(MAKE) --no-print-directory check BUILD=build-asan CMAKE_FLAGS="-DSANITIZE=address,undefined"

demo: deps build
	@scripts/demo

up: deps build
	@scripts/demo --up

down:
	@scripts/demo --down

bench: deps
	@$(MAKE) --no-print-directory build BUILD=build-release BUILD_TYPE=Release CMAKE_FLAGS="-DREFUGE_BENCH=ON"
	@bench/run-all

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DREFUGE_FUZZ=ON
	cmake --build build-fuzz -j$(JOBS)
	@scripts/fuzz-run build-fuzz $(FUZZ_SECONDS)

soak: deps build
	REFUGE_SOAK=1 REFUGE_BUILD=$(CURDIR)/$(BUILD) REFUGE_SRC=$(CURDIR) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/dr

clean:
	rm -rf build build-asan build-release build-fuzz
