# Two commands on a fresh machine: `make demo` (set up + run the pipeline) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench speech speech-model layouts clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m emoray.demo

# pytest exits 5 when it collects nothing: an empty suite is a failure, said plainly.
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python -m benchmarks.label --rounds 2

# Speaker-independent audio on real speech: 6 folds by actor (about 15-20 minutes on 2 CPUs).
SPEECH ?= ../shared/data/ravdess-speech-16k
speech: $(STAMP)
	$(BIN)/emoray preprocess --input $(SPEECH) --output out/speech16k
	$(BIN)/emoray train --config jobs/configs/train_speech.yaml

# The speech folds (make speech) in every archive layout and recording condition (docs/speakers.md).
layouts: $(STAMP)
	$(BIN)/python -m emoray.evaluate.layouts --run out/runs/speech-folds --data $(SPEECH) --out out/layouts

# The shipped audio model: the same recipe trained on every actor of $(SPEECH).
speech-model: $(STAMP)
	$(BIN)/emoray preprocess --input $(SPEECH) --output out/speech16k
	$(BIN)/emoray train --config jobs/configs/train_speech_model.yaml
	mkdir -p models && cp out/runs/speech-model/models/all/audio.pt models/audio-speech18.pt
	@echo "models/audio-speech18.pt: the default model of emoray evaluate and emoray label"

clean:
	rm -rf $(VENV) demo
