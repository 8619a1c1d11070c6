#!/usr/bin/env bash
# Regenerates the bundled noise bank corpora/mini-musan (MUSAN layout: noise/, music/,
# speech/ with ANNOTATIONS files) and corpora/mini-rirs (room impulse responses).
#   corpora/scripts/make-mini-musan.sh
# Noises are synthesized with sox (deterministic: -R, fixed seeds); the babble noise and
# the speech subset are made from the bundled mini-librispeech corpus; the impulse
# responses are exponentially decaying noise written by Python's wave module.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpora="$(cd "$here/.." && pwd)"
out="$corpora/mini-musan/musan"
rirs="$corpora/mini-rirs"
speech_root="$corpora/mini-librispeech/LibriSpeech/train-clean-100"
rm -rf "$corpora/mini-musan" "$rirs"
mkdir -p "$out/noise/free-sound" "$out/noise/sound-bible" "$out/music/synth" "$out/speech/librivox" "$rirs"

synth() {  # name seconds effect...
  local path="$1" seconds="$2"; shift 2
  sox -R -n -r 16000 -b 16 -c 1 "$path" synth "$seconds" "$@"
}
synth "$out/noise/free-sound/noise-free-sound-0000.wav" 3 whitenoise vol 0.3
synth "$out/noise/free-sound/noise-free-sound-0001.wav" 3 pinknoise vol 0.4
synth "$out/noise/free-sound/noise-free-sound-0002.wav" 3 brownnoise vol 0.5
# Mains hum: 50 Hz with harmonics.
sox -R -n -r 16000 -b 16 -c 1 "$out/noise/sound-bible/noise-sound-bible-0000.wav" \
  synth 3 sine 50 sine 100 sine 150 sine 250 remix 1-4 vol 0.2
# A short, too-quiet-to-matter but valid "music": a chord with vibrato.
sox -R -n -r 16000 -b 16 -c 1 "$out/music/synth/music-synth-0000.wav" \
  synth 4 sine 220 sine 277.18 sine 329.63 remix 1-3 tremolo 5 40 vol 0.3

# Speech subset: four bundled utterances from different speakers, as WAV.
mapfile -t utterances < <(find "$speech_root" -name '*.flac' | sort | awk -F/ '{spk=$(NF-2)} !seen[spk]++' | head -n 4)
i=0
for flac in "${utterances[@]}"; do
  sox -R "$flac" -r 16000 -b 16 -c 1 "$out/speech/librivox/speech-librivox-000$i.wav"
  i=$((i + 1))
done
# Babble noise: the four talkers mixed, trimmed to 3 s.
sox -R -m "$out"/speech/librivox/speech-librivox-000{0,1,2,3}.wav -r 16000 -b 16 -c 1 \
  "$out/noise/free-sound/noise-free-sound-0003.wav" trim 0 3 vol 0.8

# ANNOTATIONS files as in MUSAN (one line per file: id and what it is).
printf '%s\n' "noise-free-sound-0000 white noise (sox synth)" "noise-free-sound-0001 pink noise (sox synth)" \
  "noise-free-sound-0002 brown noise (sox synth)" "noise-free-sound-0003 babble of 4 talkers (bundled speech)" \
  > "$out/noise/free-sound/ANNOTATIONS"
echo "noise-sound-bible-0000 50 Hz mains hum with harmonics (sox synth)" > "$out/noise/sound-bible/ANNOTATIONS"
echo "music-synth-0000 synth A-major chord with tremolo (sox synth)" > "$out/music/synth/ANNOTATIONS"
for i in 0 1 2 3; do echo "speech-librivox-000$i from corpora/mini-librispeech ${utterances[$i]##*/}"; done \
  > "$out/speech/librivox/ANNOTATIONS"
cat > "$corpora/mini-musan/README" <<TXT
A tiny noise bank in MUSAN's layout (OpenSLR 17), made by corpora/scripts/make-mini-musan.sh:
sox-synthesized white/pink/brown noise and hum, a synth chord as "music", four bundled
speech utterances as the "speech" subset and their mixture as a babble noise.
TXT

# Room impulse responses: direct path + exponentially decaying noise (RT60 0.3 s and 0.6 s).
python3 - "$rirs" <<'PY'
import math, random, struct, sys, wave
for name, rt60 in (("rir-small-room.wav", 0.3), ("rir-large-room.wav", 0.6)):
    rng = random.Random(rt60)
    rate, n = 16000, int(16000 * rt60)
    decay = math.log(1000) / (rt60 * rate)  # -60 dB at rt60
    samples = [1.0] + [0.3 * rng.uniform(-1, 1) * math.exp(-decay * i) for i in range(1, n)]
    with wave.open(f"{sys.argv[1]}/{name}", "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, s)) * 32767)) for s in samples))
PY
echo "Synthetic room impulse responses made by corpora/scripts/make-mini-musan.sh." > "$rirs/README"
du -sh "$corpora/mini-musan" "$rirs"
