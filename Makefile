# pqota: the front to CMake. `make demo` and `make test` set everything up themselves.
.DEFAULT_GOAL := build
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?=

.PHONY: bootstrap build install deb test test-deb asan test-asan demo bench fuzz format format-check lint clean help

help:
	@echo "make demo          bootstrap, build, run the end-to-end demo"
	@echo "make install       install under PREFIX (default /usr/local; DESTDIR honoured)"
	@echo "make deb           build the Debian package (build/pqota_VERSION_ARCH.deb)"
	@echo "make test          bootstrap, build, run every test (ctest)"
	@echo "make test-deb      install the .deb into a clean Debian 12 root and run it there"
	@echo "make test-asan     the tests again under AddressSanitizer + UBSan"
	@echo "make bench         benchmarks: crypto, pack (deltas vs bsdiff, xdelta3, zstd), server (vs nginx)"
	@echo "make fuzz          libFuzzer campaigns (FUZZ_SECONDS=60 per harness)"
	@echo "make format        clang-format the sources; make format-check checks only"
	@echo "make lint          static gates: banned functions, lengths, cppcheck, clang-tidy"

bootstrap:
	@scripts/bootstrap

# configure once per build tree, against the OpenSSL that bootstrap provided
$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DPQOTA_OPENSSL_PREFIX="$$(scripts/env --prefix)"

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# PREFIX: where `make install` puts pqota (docs/operations.md "Installing")
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix "$(PREFIX)"

# the Debian package of the build tree (scripts/make-deb)
deb: build
	scripts/make-deb $(BUILD)

# the package on a clean Debian 12 root (debootstrap, cached in ~/.cache/pqota; needs root
# and Debian's mirror): tests/deb/install_deb.sh
test-deb: deb
	@scripts/bootstrap --quiet --with deb
	PQOTA_BIN=$(abspath $(BUILD))/pqota tests/deb/install_deb.sh $(BUILD)/pqota_$$($(BUILD)/pqota version | sed -n 's/^pqota //p')_$$(dpkg --print-architecture).deb

# the tests also need Chromium, node and npm (the console's browser tests, the PQC TLS check)
test: build
	@scripts/bootstrap --quiet --with browser
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) $(CTEST_ARGS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPQOTA_SANITIZE=ON \
	  -DPQOTA_OPENSSL_PREFIX="$$(scripts/env --prefix)"

asan: bootstrap $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)

test-asan: asan
	@scripts/bootstrap --quiet --with browser
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS) $(CTEST_ARGS)

# DEMO_ARGS: options of scripts/demo, e.g. DEMO_ARGS=--keep (the server stays up afterwards)
DEMO_ARGS ?=
demo: build
	scripts/demo $(DEMO_ARGS)

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
# libFuzzer campaigns (clang, ASan+UBSan): each harness runs FUZZ_SECONDS from its corpus;
# new inputs land in tests/fuzz/out/NAME (copy the interesting ones into the corpus).
fuzz:
	@scripts/bootstrap --with fuzz
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPQOTA_FUZZ=ON -DPQOTA_SANITIZE=ON \
	  -DPQOTA_OPENSSL_PREFIX="$$(scripts/env --prefix)"
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@for f in $(FUZZ_BUILD)/fuzz_*; do case $$f in *_replay) continue;; esac; \
	  n=$${f##*/fuzz_}; mkdir -p tests/fuzz/out/$$n; \
	  echo "== fuzz $$n for $(FUZZ_SECONDS) s"; \
	  $$f tests/fuzz/out/$$n tests/fuzz/corpus/$$n -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|ERROR|SUMMARY" || exit 1; \
	done

# BENCH_ARGS: options of bench/server-vs-nginx.sh, e.g. BENCH_ARGS=--quick; PACK_ARGS: options
# of `pqota bench pack`, e.g. PACK_ARGS=--large (adds the 1 GB images; docs/benchmarks.md)
BENCH_ARGS ?=
PACK_ARGS  ?=
bench: build
	@scripts/bootstrap --with bench
	@scripts/fetch-firmware || echo "make bench: no firmware pairs (no network?): the benchmark lists them as skipped"
	$(BUILD)/pqota bench crypto
	$(BUILD)/pqota bench pack $(PACK_ARGS)
	PQOTA_BIN=$(abspath $(BUILD))/pqota bench/server-vs-nginx.sh $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files 'src/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'bench/*.[ch]')

format-check:
	@scripts/format-check

# the static gates CI runs (scripts/lint); clang-tidy reads the build tree's compile database
lint: bootstrap $(BUILD)/CMakeCache.txt
	@scripts/bootstrap --quiet --with lint
	scripts/lint --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
