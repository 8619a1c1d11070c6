#!/usr/bin/env bash
# make-manifest-examples.sh - write the two generic-corpus examples over the bundled
# mini LibriSpeech audio (no audio is copied):
#
#   corpora/manifest-example/{train,dev,test}.jsonl   NeMo/PaddlePaddle JSON lines;
#       audio_filepath relative to the manifest's folder, duration = the file's length
#   corpora/kaldi-example/{train,dev,test}/{wav.scp,text,utt2spk}
#       wav.scp paths relative to the repository root (Kaldi resolves relative paths
#       against the current directory, so run ds2-data from the repository root)
#
# The dev examples also show segments: corpora/kaldi-example/dev/segments cuts each
# recording from 0.1 s to its end, and the dev manifest gives the same cut with "offset".
#
# Requires: bash, python3 (stdlib only), soxi (sox). Deterministic.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
command -v soxi >/dev/null || { echo "error: soxi not found" >&2; exit 2; }

python3 - "$repo" <<'PY'
import glob, json, os, subprocess, sys

repo = sys.argv[1]
source = os.path.join(repo, "corpora", "mini-librispeech", "LibriSpeech")
splits = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
manifest_dir = os.path.join(repo, "corpora", "manifest-example")
kaldi_dir = os.path.join(repo, "corpora", "kaldi-example")
os.makedirs(manifest_dir, exist_ok=True)

for name, part in splits.items():
    entries = []
    for trans in sorted(glob.glob(os.path.join(source, part, "*", "*", "*.trans.txt"))):
        for line in open(trans, encoding="utf-8"):
            uid, text = line.rstrip("\n").split(" ", 1)
            flac = os.path.join(os.path.dirname(trans), uid + ".flac")
            samples = int(subprocess.run(["soxi", "-s", flac], check=True, capture_output=True, text=True).stdout)
            entries.append((uid, uid.split("-")[0], flac, samples / 16000.0, text))
    cut = 0.1 if name == "dev" else None
    with open(os.path.join(manifest_dir, name + ".jsonl"), "w", encoding="utf-8") as f:
        for uid, _, flac, seconds, text in entries:
            entry = {"audio_filepath": os.path.relpath(flac, manifest_dir)}
            if cut is not None:
                entry["offset"] = cut
                entry["duration"] = round(seconds - cut, 6)
            else:
                entry["duration"] = seconds
            entry["text"] = text.lower()
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    folder = os.path.join(kaldi_dir, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "wav.scp"), "w") as wav, open(os.path.join(folder, "text"), "w") as txt, \
         open(os.path.join(folder, "utt2spk"), "w") as spk:
        for uid, speaker, flac, _, text in entries:
            recording = uid if cut is None else uid + "-rec"
            wav.write(f"{recording} {os.path.relpath(flac, repo)}\n")
            txt.write(f"{uid} {text}\n")
            spk.write(f"{uid} {speaker}\n")
    if cut is not None:
        with open(os.path.join(folder, "segments"), "w") as seg:
            for uid, *_ in entries:
                seg.write(f"{uid} {uid}-rec {cut:.2f} -1\n")
    print(f"{name}: {len(entries)} utterances", file=sys.stderr)
PY
