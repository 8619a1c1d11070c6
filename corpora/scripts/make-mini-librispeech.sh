#!/usr/bin/env bash
# Regenerate the bundled corpus corpora/mini-librispeech/LibriSpeech (~4 min, seed 1).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; exec "$here/make-librispeech-like.sh" --out "$here/../mini-librispeech" --minutes 4 --seed 1 --force "$@"
