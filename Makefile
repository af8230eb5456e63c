# Two commands do everything on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= sqlite:///tailor.db
LARGEST_160  := {"ks":[7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7],"e":[6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6,6],"d":[4,4,4,4,4],"r":160}
SMALLEST_160 := {"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"d":[2,2,2,2,2],"r":160}

.PHONY: setup demo test lint bench clean

# torch first, pinned exactly: on this project's machines 2.13.0 is a local CPU wheel, while a looser spec (or a
# dependency asking for torch) pulls a multi-GB CUDA build from PyPI.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,export,tflite,android]'
	$(BIN)/python -m pip check
	touch $(STAMP)

# TVM in its own environment: apache-tvm needs typing-extensions >= 4.13, litert-torch < 4.13 (RUNTIME-NOTES.md).
# The tvm device runs its compile and measure steps in a worker process of this environment.
TVM_VENV  := .venv-tvm
TVM_STAMP := $(TVM_VENV)/.installed
$(TVM_STAMP): requirements-tvm.txt
	$(PYTHON) -m venv $(TVM_VENV)
	$(TVM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TVM_VENV)/bin/python -m pip install --quiet -r requirements-tvm.txt
	$(TVM_VENV)/bin/python -m pip check
	touch $(TVM_STAMP)

setup: $(STAMP) $(TVM_STAMP)

demo: $(STAMP) $(TVM_STAMP)
	$(BIN)/tailor devices
	$(BIN)/tailor profile ofa-mbv3-max --device cpu --per-op --sort time
	$(BIN)/tailor profile ofa-mbv3-min --device tvm --resolution 128 --per-op --sort time --runs 20
	$(BIN)/tailor table build --space ofa-mbv3 --device cpu --width 1.2 --resolution 160 --db $(DB)
	$(BIN)/tailor table show --db $(DB)
	$(BIN)/tailor table export ofa-mbv3-w1.2-r160 --db $(DB) -o out/ofa-mbv3-w1.2-r160.yaml
	$(BIN)/tailor predictor train --kind lut --table ofa-mbv3-w1.2-r160 --db $(DB) -o out/lut-w1.2-r160.tlp
	$(BIN)/tailor predictor predict out/lut-w1.2-r160.tlp --width 1.2 --arch '$(LARGEST_160)' --arch '$(SMALLEST_160)'
	$(BIN)/tailor supernet train --space ofa-mbv3 --width 1.2 --epochs 4 -o out/supernet-w1.2
	$(BIN)/tailor supernet accuracy out/supernet-w1.2 --n 40 -o out/accuracy.tlp
	$(BIN)/tailor predictor calibrate out/lut-w1.2-r160.tlp --device cpu --width 1.2 --classes 10 -o out/lut-cal-w1.2-r160.tlp
	$(BIN)/tailor search --space ofa-mbv3 --width 1.2 --predictor out/lut-cal-w1.2-r160.tlp --accuracy out/accuracy.tlp \
	  --latency-ratio 0.6 --strategy evolution --budget 20000 --classes 10 --device cpu -o out/search.json
	$(BIN)/tailor export out/search.json --supernet out/supernet-w1.2 --format onnx --device cpu --refit --db $(DB) \
	  --force -o out/export-onnx
	$(BIN)/tailor export out/search.json --supernet out/supernet-w1.2 --format tflite --device litert --force \
	  -o out/export-tflite
	$(BIN)/tailor verify out/export-onnx
	$(BIN)/tailor prune --supernet out/supernet-w1.2 --result out/search.json --device cpu --db $(DB) \
	  --latency-ratio 0.6 --episodes 60 --finetune-epochs 1 -o out/pruned.json
	$(BIN)/tailor export out/pruned.json --format onnx --device cpu --force -o out/export-pruned

test: $(STAMP) $(TVM_STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/profiling_overhead.py

clean:
	rm -rf $(VENV) $(TVM_VENV) out  # tailor.db holds measurements: never removed here
