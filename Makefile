# The two commands: `make demo` (whole pipeline on the built-in demo dataset) and `make test`.
# Both create .venv with the pinned requirements on first use (no root needed).
SHELL := /bin/bash
# idle OpenMP threads sleep instead of spinning: much faster training on a shared machine
export OMP_WAIT_POLICY ?= PASSIVE
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
DATASET ?= demo
RUN ?= cnn_mel
VIDEO_NAME ?= video
VRUN ?= demo_video
VIDEO_RECIPE ?= recipes/demo_video.yaml
SPLIT ?= val
NPY := npy_files/$(DATASET)/$(RUN)
VNPY := npy_files/$(DATASET)/$(VRUN)
VIDEO := video_classification_results/$(DATASET)
# steps 02/03/08 exit 3 when some file failed and is listed with its reason: the demo goes on
LISTED_FAILURES_OK := || [ $$? -eq 3 ]
# The demo's numbers repeat on another x86-64 CPU only if the math kernels and the thread
# count are the same: OpenBLAS's Haswell (AVX2) kernels for numpy, torch's own (ATen) and
# oneDNN's kernels capped at AVX2, MKL in its AVX2 reproducible mode, 2 torch threads
# (README: "What the numbers depend on").
DEMO_CPU := OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
            MKL_CBWR=AVX2,STRICT
DEMO_THREADS := --torch-threads 2

.PHONY: venv demo test clean-demo

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: venv
	@start=$$(date +%s); set -e; \
	export $(DEMO_CPU); \
	step() { local t0=$$(date +%s%N) rc=0; echo "== $$*"; "$$@" || rc=$$?; \
	         echo "   ($$(( ($$(date +%s%N) - t0) / 1000000 )) ms)"; return $$rc; }; \
	step $(PY) scripts/00_make_demo_dataset.py --dataset $(DATASET); \
	step $(PY) scripts/01_make_file_lists.py --dataset $(DATASET); \
	step $(PY) scripts/02_extract_audio.py --dataset $(DATASET) $(LISTED_FAILURES_OK); \
	step $(PY) scripts/03_make_audio_images.py --dataset $(DATASET) $(LISTED_FAILURES_OK); \
	step $(PY) scripts/04_make_datalists.py --dataset $(DATASET); \
	step $(PY) train.py --dataset $(DATASET) --run $(RUN) $(DEMO_THREADS); \
	step $(PY) scripts/05_score_tracks.py --dataset $(DATASET) --run $(RUN); \
	step $(PY) scripts/08_extract_frames.py --dataset $(DATASET) --config $(VIDEO_RECIPE) \
	  $(LISTED_FAILURES_OK); \
	step $(PY) train.py --dataset $(DATASET) --config $(VIDEO_RECIPE) --run $(VRUN) $(DEMO_THREADS); \
	step $(PY) scripts/06_match_video_to_audio.py --dataset $(DATASET) \
	  --video-scores $(VNPY)/$(SPLIT)_scores.npy \
	  --audio-ids $(NPY)/$(SPLIT)_ids.txt \
	  --out $(VIDEO)/$(VIDEO_NAME)_$(SPLIT)_matched.npy; \
	step $(PY) scripts/07_fuse.py --dataset $(DATASET) \
	  --scores audio=$(NPY)/$(SPLIT)_scores.npy video=$(VIDEO)/$(VIDEO_NAME)_$(SPLIT)_matched.npy; \
	echo "make demo: $$(( $$(date +%s) - start )) s"

test: venv
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf data/$(DATASET) file_lists/$(DATASET) datalists/$(DATASET) npy_files/$(DATASET) \
	  runs/$(DATASET) video_classification_results/$(DATASET)
