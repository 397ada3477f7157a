# The two commands: `make demo` (whole pipeline on the built-in demo dataset) and `make test`.
# Both create .venv with the pinned requirements on first use (no root needed).
SHELL := /bin/bash
# idle OpenMP threads sleep instead of spinning: much faster training on a shared machine
export OMP_WAIT_POLICY ?= PASSIVE
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
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
# a rerun of a recipe retrains its runs from scratch (train.py refuses that without --overwrite)
TRAIN_AGAIN := --overwrite

# make two-phase: the two-phase DCASE 2021 system (Pham et al.) on the demo dataset. Phase I
# trains five backbones (recipes under TP_RECIPES, one per backbone; the visual slots hold
# lighter stand-ins on the CPU demo), each scored on train and val; Phase II (scripts/
# 12_two_phase.py) fuses their frozen embeddings. TP_PHASE2=0 (or make two-phase-phase1)
# stops after Phase I. Steps 00-01 are make demo's (their outputs are reused); the dcase2021
# front end and the 2 fps frames have folders of their own.
TP_RECIPES ?= recipes/two_phase_demo
TP_PHASE2_RECIPE ?= $(TP_RECIPES)/phase2.yaml
TP_PHASE2 ?= 1
TP_AUDIO := aud_mel aud_gam aud_cqt
TP_VISUAL := vis_inc vis_conv

# The start of a runbook recipe: the pinned kernels, stop at the first error, and `step CMD...`
# that echoes CMD and its time in ms (and passes its exit status on).
TIMED_STEPS := start=$$(date +%s); set -e; export $(DEMO_CPU); \
	step() { local t0=$$(date +%s%N) rc=0; echo "== $$*"; "$$@" || rc=$$?; \
	         echo "   ($$(( ($$(date +%s%N) - t0) / 1000000 )) ms)"; return $$rc; }

.PHONY: venv demo test clean-demo two-phase two-phase-phase1 envelope clean-envelope

# the pinned set, then the project itself, editable: scripts and tests import `soundtrack`
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: venv
	@$(TIMED_STEPS); \
	step $(PY) scripts/00_make_demo_dataset.py --dataset $(DATASET); \
	step $(PY) scripts/01_make_file_lists.py --dataset $(DATASET); \
	step $(PY) scripts/02_extract_audio.py --dataset $(DATASET) $(LISTED_FAILURES_OK); \
	step $(PY) scripts/03_make_audio_images.py --dataset $(DATASET) $(LISTED_FAILURES_OK); \
	step $(PY) scripts/04_make_datalists.py --dataset $(DATASET); \
	step $(PY) train.py --dataset $(DATASET) --run $(RUN) $(DEMO_THREADS) $(TRAIN_AGAIN); \
	step $(PY) scripts/05_score_tracks.py --dataset $(DATASET) --run $(RUN); \
	step $(PY) scripts/08_extract_frames.py --dataset $(DATASET) --config $(VIDEO_RECIPE) \
	  $(LISTED_FAILURES_OK); \
	step $(PY) train.py --dataset $(DATASET) --config $(VIDEO_RECIPE) --run $(VRUN) $(DEMO_THREADS) $(TRAIN_AGAIN); \
	step $(PY) scripts/06_match_video_to_audio.py --dataset $(DATASET) \
	  --video-scores $(VNPY)/$(SPLIT)_scores.npy \
	  --audio-ids $(NPY)/$(SPLIT)_ids.txt \
	  --out $(VIDEO)/$(VIDEO_NAME)_$(SPLIT)_matched.npy; \
	step $(PY) scripts/07_fuse.py --dataset $(DATASET) \
	  --scores audio=$(NPY)/$(SPLIT)_scores.npy video=$(VIDEO)/$(VIDEO_NAME)_$(SPLIT)_matched.npy; \
	echo "make demo: $$(( $$(date +%s) - start )) s"

two-phase: venv
	@$(TIMED_STEPS); \
	step $(PY) scripts/00_make_demo_dataset.py --dataset $(DATASET); \
	step $(PY) scripts/01_make_file_lists.py --dataset $(DATASET); \
	step $(PY) scripts/02_extract_audio.py --dataset $(DATASET) \
	  --config $(TP_RECIPES)/aud_mel.yaml $(LISTED_FAILURES_OK); \
	for b in $(TP_AUDIO); do \
	  step $(PY) scripts/03_make_audio_images.py --dataset $(DATASET) \
	    --config $(TP_RECIPES)/$$b.yaml $(LISTED_FAILURES_OK); \
	  step $(PY) scripts/04_make_datalists.py --dataset $(DATASET) --config $(TP_RECIPES)/$$b.yaml; \
	done; \
	for b in $(TP_VISUAL); do \
	  step $(PY) scripts/08_extract_frames.py --dataset $(DATASET) \
	    --config $(TP_RECIPES)/$$b.yaml $(LISTED_FAILURES_OK); \
	done; \
	for b in $(TP_AUDIO) $(TP_VISUAL); do \
	  step $(PY) train.py --dataset $(DATASET) --config $(TP_RECIPES)/$$b.yaml --run tp_$$b \
	    --eval-splits train val $(DEMO_THREADS) $(TRAIN_AGAIN); \
	  step $(PY) scripts/05_score_tracks.py --dataset $(DATASET) --run tp_$$b --eval-splits val; \
	done; \
	if [ "$(TP_PHASE2)" = 1 ]; then \
	  step $(PY) scripts/12_two_phase.py --dataset $(DATASET) --config $(TP_PHASE2_RECIPE) \
	    --sources aud_mel=tp_aud_mel aud_gam=tp_aud_gam aud_cqt=tp_aud_cqt \
	    vis_inc=tp_vis_inc vis_conv=tp_vis_conv; \
	fi; \
	echo "make two-phase: $$(( $$(date +%s) - start )) s"

two-phase-phase1:
	$(MAKE) two-phase TP_PHASE2=0

test: venv
	$(PY) -m pytest -q tests

# The envelope demo (README: "Predicting the sound's envelope from the pictures"): the impacts
# dataset, its frames and targets, the 2D backbone, the envelope model, step 10's evaluation
# and the auxiliary-task comparison (a clip classifier without / with the envelope loss).
EDATASET ?= impacts
EFRAMES := recipes/impacts_frames.yaml
EMODEL := recipes/impacts_envelope.yaml
# the impacts dataset's generator seed (step 00 only; training keeps the recipes' SEED):
# `make envelope EDATASET=impacts_fresh EGEN_SEED=7` repeats everything on clips never seen
EGEN_SEED ?= 0
AUX_SEEDS ?= 0 1 2
AUX_WEIGHT ?= 1.0
AUX := --envelope-loss-weight 0 --class-loss-weight 1 --eval-checkpoint last --eval-splits val

envelope: venv
	@$(TIMED_STEPS); \
	step $(PY) scripts/00_make_demo_dataset.py --dataset-kind impacts --dataset $(EDATASET) \
	  --seed $(EGEN_SEED) \
	  --videos-per-class 30; \
	step $(PY) scripts/01_make_file_lists.py --dataset $(EDATASET); \
	step $(PY) scripts/08_extract_frames.py --dataset $(EDATASET) --config $(EFRAMES) \
	  $(LISTED_FAILURES_OK); \
	step $(PY) scripts/09_make_envelopes.py --dataset $(EDATASET) --config $(EFRAMES) \
	  $(LISTED_FAILURES_OK); \
	step $(PY) train.py --dataset $(EDATASET) --config $(EFRAMES) --run impacts_frames \
	  --per-frame --eval-splits train val $(DEMO_THREADS) $(TRAIN_AGAIN); \
	step $(PY) train.py --dataset $(EDATASET) --config $(EMODEL) --run impacts_envelope \
	  --eval-splits val $(DEMO_THREADS) $(TRAIN_AGAIN); \
	for s in $(AUX_SEEDS); do \
	  step $(PY) train.py --dataset $(EDATASET) --config $(EMODEL) --run aux_without_s$$s \
	    $(AUX) --seed $$s $(DEMO_THREADS) $(TRAIN_AGAIN); \
	  step $(PY) train.py --dataset $(EDATASET) --config $(EMODEL) --run aux_with_s$$s \
	    $(AUX) --envelope-loss-weight $(AUX_WEIGHT) --seed $$s $(DEMO_THREADS) $(TRAIN_AGAIN); \
	done; \
	step $(PY) scripts/10_evaluate_envelopes.py --dataset $(EDATASET) --config $(EMODEL) \
	  --run impacts_envelope \
	  --classifier-runs $(foreach s,$(AUX_SEEDS),aux_without_s$(s)) \
	  --aux-classifier-runs $(foreach s,$(AUX_SEEDS),aux_with_s$(s)); \
	echo "make envelope: $$(( $$(date +%s) - start )) s"

clean-envelope:
	rm -rf data/$(EDATASET) file_lists/$(EDATASET) npy_files/$(EDATASET) runs/$(EDATASET)

clean-demo:
	rm -rf data/$(DATASET) file_lists/$(DATASET) datalists/$(DATASET) npy_files/$(DATASET) \
	  runs/$(DATASET) video_classification_results/$(DATASET)
