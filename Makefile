# Two commands on a fresh machine: `make demo` and `make test`. Each installs
# what it needs: Debian's OpenCV C++ development files (with contrib tracking),
# a virtual environment at .venv, and the package built into it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The real photos and the Lookout API description ship with the package (python/conveyor_qc/data/):
# a clone needs no ../shared. CONVEYOR_QC_SHARED, when set, replaces them with a shared folder.

SOURCES := $(shell find cpp python -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.py' -o -name '*.pyi' -o -name '*.html' -o -name '*.js' -o -name '*.css' \) 2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: all demo test test-cpp lint format stubs bench sysdeps clean help fuzzers fuzz
all: $(VENV)/.installed

help:
	@echo "make demo   build everything and run the whole loop on synthetic footage: run, label, dataset, train, run with the model (out/demo/)"
	@echo "make test   build everything and run all tests (C++ and Python)"
	@echo "make lint   ruff (lint and format), mypy, clang-format and the compiled module's stub check"
	@echo "make format rewrite the sources in the project's format (ruff format, clang-format)"
	@echo "make bench  run the throughput benchmarks (bench/)"
	@echo "make fuzz   run every fuzzer FUZZ_SECONDS (default 600) each: libFuzzer on the C++ core, atheris and hypothesis on the bindings and config loader"
	@echo "make clean  remove build outputs and the virtual environment"

# OpenCV's C++ headers and the contrib tracking module.
sysdeps: build/.sysdeps
build/.sysdeps:
	@mkdir -p build
	@if pkg-config --exists opencv4 2>/dev/null && [ -f "$$(pkg-config --variable=includedir opencv4)/opencv2/tracking.hpp" ]; then \
	  true; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing OpenCV C++ development files (libopencv-dev) with apt-get..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libopencv-dev pkg-config g++ make >/dev/null || exit 1; \
	else \
	  echo "error: OpenCV's C++ development files are missing." >&2; \
	  echo "  Install them with:  sudo apt-get install libopencv-dev" >&2; \
	  exit 1; \
	fi
	@touch $@

# A real browser for the labelling page's tests (tests/test_label.py): Debian's
# chromium and its chromedriver, driven by Selenium (no browser download).
build/.browser:
	@mkdir -p build
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  touch $@; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing chromium and chromium-driver with apt-get (browser tests of the labelling page)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null && touch $@ || exit 1; \
	else \
	  echo "warning: chromium is missing: the labelling page's browser tests will be skipped." >&2; \
	  echo "  Install it with:  sudo apt-get install chromium chromium-driver" >&2; \
	fi

# A real MQTT broker for the reject signal's tests (tests/test_line.py): Debian's mosquitto,
# started by the tests on a loopback port.
build/.mosquitto:
	@mkdir -p build
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then \
	  touch $@; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing mosquitto with apt-get (the reject signal's MQTT tests)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    mosquitto >/dev/null && touch $@ || exit 1; \
	else \
	  echo "warning: mosquitto is missing: the reject signal's MQTT test will be skipped." >&2; \
	  echo "  Install it with:  sudo apt-get install mosquitto" >&2; \
	fi

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@touch $@

# The package is installed editable: Python files are used from python/ as they
# are, and a change to the C++ sources rebuilds the module on the next make.
# Build requirements live in the venv so that rebuilds are incremental
# (no build isolation: the persistent build/ directory is reused).
$(VENV)/.deps: pyproject.toml $(VENV)/.created
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.18" ninja
	$(PIP) install -q numpy "scipy>=1.10" "threadpoolctl>=3.1" "av>=14" "opencv-contrib-python-headless>=4.8" "boto3>=1.34" "tomli-w>=1.0" "matplotlib>=3.8" "prometheus-client>=0.17" "paho-mqtt>=2.0" "scikit-image>=0.22" \
	  "pytest>=8" "pytest-xdist>=3" "hypothesis>=6" "pytest-benchmark>=4" "selenium>=4" \
	  "moto[s3]>=5" "flask>=3" "flask-cors>=4" "distributed>=2024.1" "atheris>=2.3" "onnxruntime>=1.17" "onnx>=1.15"
# TrackEval (conveyor-qc eval) declares opencv-python, which must never sit next to
# opencv-contrib-python-headless; its metrics need only numpy and scipy.
	$(PIP) install -q --no-deps "trackeval>=1.3"
	@touch $@

$(VENV)/.installed: build/.sysdeps $(VENV)/.deps $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps --editable .
	@touch $@

# The whole loop on synthetic footage: a training clip is run and its objects
# labelled (from its ground truth, standing in for a person on `conveyor-qc
# label`'s page), a dataset and an anomaly model are made from it, and the demo
# clip is run with that model. Each step replaces what an earlier demo made.
QC := $(VENV)/bin/conveyor-qc
demo: $(VENV)/.installed
	$(QC) synth out/demo-video --preset cookies --seed 1 --seconds 20 -q --force
	$(QC) synth out/demo-train --preset cookies --seed 2 --seconds 20 -q --force
	$(QC) run out/demo-train/video.mp4 --out out/demo-train-run --no-video -q
	$(QC) label out/demo-train-run --from-truth out/demo-train --force
	$(QC) dataset out/demo-train-run --out out/demo-dataset --test-fraction 0 --per-object 20 -q
	$(QC) train out/demo-dataset/train.manifest --out out/demo-model
	$(QC) run out/demo-video/video.mp4 --out out/demo --model out/demo-model
	@$(PY) -m conveyor_qc.demo summary out/demo out/demo-video

# The core on its own, from C++ with no Python: library, tests, example.
# Quiet when it builds; the whole compiler output when it does not.
build/cpp/test_core: build/.sysdeps $(VENV)/.deps $(SOURCES)
	@echo "Building the C++ core and its tests (build/cpp)..."
	@$(VENV)/bin/cmake -S . -B build/cpp -G Ninja -DCQC_BUILD_PYTHON=OFF -DCQC_BUILD_TESTS=ON \
	  -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) -DCMAKE_BUILD_TYPE=Release > build/cpp-build.log 2>&1 \
	  && $(VENV)/bin/cmake --build build/cpp -j2 >> build/cpp-build.log 2>&1 \
	  || { cat build/cpp-build.log; echo "error: the C++ core did not build (log: build/cpp-build.log)" >&2; exit 1; }

test-cpp: $(VENV)/.deps build/cpp/test_core
	cd build/cpp && ../../$(VENV)/bin/ctest --output-on-failure

# The libFuzzer target is `make fuzz`'s (it needs clang); its test here skips when it is not built.
# On both cores (pytest-xdist), a test file per worker at a time: its module fixtures (clips,
# runs, models) are made once. Many tests wait on subprocesses, servers and the disk.
test: $(VENV)/.installed test-cpp build/.browser build/.mosquitto
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# Linters and the type checker, pinned in the venv (no system packages needed). CI runs this.
LINT_TOOLS := "ruff==0.17.6" "mypy==2.4.1" "clang-format==18.1.8" "pybind11-stubgen==2.5.5" "lizard==1.24.3"  # lizard: tools/code_metrics.py
CPP_FILES = $(shell git ls-files 'cpp/*.cpp' 'cpp/*.hpp')
$(VENV)/.lint-tools: $(VENV)/.created
	$(PIP) install -q $(LINT_TOOLS)
	@touch $@

lint: $(VENV)/.installed $(VENV)/.lint-tools
	$(VENV)/bin/ruff check python tests bench tools fuzz
	$(VENV)/bin/ruff format --check python tests bench tools fuzz
	$(VENV)/bin/mypy
	@echo "$(VENV)/bin/clang-format --dry-run --Werror (every C++ file of cpp/)"
	@$(VENV)/bin/clang-format --dry-run --Werror $(CPP_FILES)
	$(PY) tools/check_stubs.py
	$(PY) tools/settings_doc.py --check

format: $(VENV)/.lint-tools
	$(VENV)/bin/ruff check --fix-only -q python tests bench tools fuzz
	$(VENV)/bin/ruff format -q python tests bench tools fuzz
	$(VENV)/bin/clang-format -i $(CPP_FILES)

# The compiled module's stub, python/conveyor_qc/_core.pyi, generated from the built module.
stubs: $(VENV)/.installed $(VENV)/.lint-tools
	$(PY) tools/check_stubs.py --write

# Fuzzers (issue 7, docs/faults.md). The libFuzzer target of the C++ core needs clang and its
# fuzzer runtime (installed with apt-get when run as root; skipped with a warning otherwise);
# it is built with AddressSanitizer and UBSan into build/fuzz, apart from the module's build.
build/.clang:
	@mkdir -p build
	@if command -v clang++ >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then \
	  touch $@; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "Installing clang and its fuzzer runtime with apt-get (the C++ core's libFuzzer target)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    clang libclang-rt-14-dev >/dev/null && touch $@ || exit 1; \
	else \
	  echo "warning: clang is missing: the C++ core's libFuzzer target will be skipped." >&2; \
	  echo "  Install it with:  sudo apt-get install clang libclang-rt-14-dev" >&2; \
	fi

fuzzers: build/.sysdeps $(VENV)/.deps build/.clang
	@if [ -f build/.clang ]; then \
	  if [ ! -f build/fuzz/build.ninja ]; then \
	    $(VENV)/bin/cmake -S . -B build/fuzz -G Ninja -DCQC_BUILD_PYTHON=OFF -DCQC_BUILD_FUZZERS=ON \
	      -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1; \
	  fi; \
	  $(VENV)/bin/cmake --build build/fuzz -j2 --target fuzz_pipeline >/dev/null || exit 1; \
	fi

FUZZ_SECONDS ?= 600
fuzz: $(VENV)/.installed fuzzers
	CQC_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -q -p no:cacheprovider tests/test_fuzz.py -k "fuzz_ or atheris or libfuzzer"

# Throughput table (issue 6): 47 minutes on 2 cores (CSRT, and the reference at R 1.0, are slow); BENCH_QUICK=1 for a reduced grid.
# Writes bench/results/{raw,throughput}.json and throughput.md, and README's table.
bench: $(VENV)/.installed
	@mkdir -p bench/results
	$(PY) -m pytest bench --benchmark-only -q -p no:cacheprovider --benchmark-json bench/results/raw.json
	$(PY) bench/report.py bench/results/raw.json --readme README.md

clean:
	rm -rf build out $(VENV) dist
