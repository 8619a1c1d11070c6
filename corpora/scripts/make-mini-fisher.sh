#!/usr/bin/env bash
# make-mini-fisher.sh - synthesize corpora/mini-fisher: four short two-sided telephone
# "conversations" in the directory structure LDC ships Fisher English Training in
# (LDC2004S13/LDC2005S13 speech, LDC2004T19/LDC2005T19 transcripts), with espeak-ng.
#
#   <out>/LDC2004S13/fe_03_p1_sph1/audio/NNN/fe_03_NNNNN.sph   2-channel 8 kHz u-law NIST SPHERE
#   <out>/LDC2004T19/fe_03_p1_tran/data/trans/NNN/fe_03_NNNNN.txt
#   <out>/LDC2005S13/fe_03_p2_sph1/...  <out>/LDC2005T19/fe_03_p2_tran/...   (part 2)
#
# Side A is channel 1 and side B channel 2, as in Fisher. Each turn is synthesized with
# the side's voice and placed on its own channel at the turn's start time (whole
# centiseconds); the other channel is silent there unless the other side overlaps.
# Transcript lines carry LDC markup ([laughter], [noise], (( )), th-, t._v., x-ray);
# espeak-ng reads the spoken words only. The SPHERE files are uncompressed u-law (real
# Fisher audio is shorten-compressed, which no free tool here writes).
#
# Conversations (the reader's splits): fe_03_00001 dev, fe_03_00051 test,
# fe_03_00101 train (part 1), fe_03_05851 train (part 2).
#
# Requires: bash, python3 (stdlib only), espeak-ng, sox. Deterministic: the same tool
# versions give byte-identical files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$here/../mini-fisher}"
for tool in python3 espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done
rm -rf -- "$OUT"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mkfisher.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

python3 - "$OUT" "$WORK" <<'PY'
import os, struct, subprocess, sys, wave

out, work = sys.argv[1:3]
RATE = 8000
DATABASE_ID = "ds2-data synthetic Fisher"

# Each conversation: (number, voice A, voice B, turns). A turn is
# (side, transcript text with LDC markup, words espeak-ng speaks, gap before it in
# seconds; a negative gap starts the turn before the previous one ends: an overlap).
CONVERSATIONS = [
    (1, "en-us+m3", "en-gb+f3", [
        ("A", "hi my name is [noise] john", "hi my name is john", 0.30),
        ("B", "hi john i'm mary [laughter]", "hi john i'm mary", 0.25),
        ("A", "so the topic is pets do you have any", "so the topic is pets do you have any", 0.30),
        ("B", "yeah we have a dog and uh two cats", "yeah we have a dog and uh two cats", 0.25),
        ("A", "[laughter]", "ha ha", -0.60),
        ("B", "(( )) the dog is (( big ))", "the dog is big", 0.30),
    ]),
    (51, "en-us+f2", "en-us+m1", [
        ("A", "how's the weather th- there today", "how's the weather th there today", 0.30),
        ("B", "it's sunny we watched the t._v. news", "it's sunny we watched the t v news", 0.30),
        ("A", "[mn] nice", "nice", 0.25),
        ("B", "yeah", "yeah", 0.25),
    ]),
    (101, "en-gb+m2", "en-us+f4", [
        ("A", "what do you like to eat", "what do you like to eat", 0.30),
        ("B", "i like pizza and home-made bread [noise]", "i like pizza and home made bread", 0.25),
        ("A", "me too [laughter] my mom makes it", "me too my mom makes it", 0.30),
        ("B", "mhm", "mhm", -0.50),
        ("A", "[breath] do you cook", "do you cook", 0.30),
        ("B", "sometimes on weekends", "sometimes on weekends", 0.25),
    ]),
    (5851, "en-us+m7", "en-gb-x-rp+f1", [
        ("A", "do you watch sports on t._v.", "do you watch sports on t v", 0.30),
        ("B", "mostly football and basketb- basketball", "mostly football and basket basketball", 0.30),
        ("A", "i played soccer in high school", "i played soccer in high school", 0.25),
        ("B", "[sigh] i never did", "i never did", 0.30),
        ("A", "it was fun", "it was fun", 0.25),
    ]),
]

def synthesize(voice, words, path):
    """espeak-ng -> 8 kHz 16-bit mono, silence trimmed, peak -3 dBFS; returns samples."""
    raw = os.path.join(work, "raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-a", "80", "-w", raw, words], check=True)
    subprocess.run(["sox", "-R", raw, "-r", str(RATE), "-c", "1", "-b", "16", path,
                    "silence", "1", "0.02", "-50d", "reverse", "silence", "1", "0.02", "-50d", "reverse",
                    "gain", "-n", "-3", "rate", "-v"], check=True)
    with wave.open(path) as w:
        return list(struct.unpack("<%dh" % w.getnframes(), w.readframes(w.getnframes())))

def ulaw(path):
    """16-bit mono WAV -> raw G.711 u-law bytes (sox, no dither)."""
    target = path[:-4] + ".ul"
    subprocess.run(["sox", "-D", path, "-t", "ul", target], check=True)
    return open(target, "rb").read()

total_turns = 0
for number, voice_a, voice_b, turns in CONVERSATIONS:
    name = f"fe_03_{number:05d}"
    placed = []          # (side, start_cs, end_cs, text, samples)
    cursor_cs = 0
    for k, (side, text, words, gap) in enumerate(turns):
        samples = synthesize(voice_a if side == "A" else voice_b, words, os.path.join(work, f"{name}-{k}.wav"))
        length_cs = -(-len(samples) // (RATE // 100))        # ceil to whole centiseconds
        start_cs = max(0, cursor_cs + round(gap * 100))
        placed.append((side, start_cs, start_cs + length_cs, text, samples))
        cursor_cs = max(cursor_cs, start_cs + length_cs)
    seconds_cs = cursor_cs + 30
    channels = {"A": [0] * (seconds_cs * RATE // 100), "B": [0] * (seconds_cs * RATE // 100)}
    for side, start_cs, _, _, samples in placed:
        first = start_cs * RATE // 100
        channels[side][first:first + len(samples)] = samples
    coded = {}
    for side in "AB":
        path = os.path.join(work, f"{name}-{side}.wav")
        with wave.open(path, "wb") as w:
            w.setnchannels(1); w.setsampwidth(2); w.setframerate(RATE)
            w.writeframes(struct.pack("<%dh" % len(channels[side]), *channels[side]))
        coded[side] = ulaw(path)
    interleaved = bytearray()
    for a, b in zip(coded["A"], coded["B"]):
        interleaved += bytes((a, b))
    frames = len(interleaved) // 2
    fields = [
        "database_id -s%d %s" % (len(DATABASE_ID), DATABASE_ID),
        f"conversation_id -s{len(name)} {name}",
        f"sample_count -i {frames}",
        "sample_n_bytes -i 1",
        "channel_count -i 2",
        "sample_byte_format -s1 1",
        f"sample_rate -i {RATE}",
        "sample_coding -s4 ulaw",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    header += b" " * (1024 - len(header))

    part, disc = ("p1", "LDC2004") if number <= 5850 else ("p2", "LDC2005")
    subfolder = f"{number // 100:03d}"
    audio_dir = os.path.join(out, f"{disc}S13", f"fe_03_{part}_sph1", "audio", subfolder)
    trans_dir = os.path.join(out, f"{disc}T19", f"fe_03_{part}_tran", "data", "trans", subfolder)
    os.makedirs(audio_dir, exist_ok=True)
    os.makedirs(trans_dir, exist_ok=True)
    with open(os.path.join(audio_dir, name + ".sph"), "wb") as f:
        f.write(header + bytes(interleaved))
    with open(os.path.join(trans_dir, name + ".txt"), "w") as f:
        f.write(f"# {name}.sph\n# Transcribed at the LDC\n\n")
        for side, start_cs, end_cs, text, _ in sorted(placed, key=lambda p: (p[1], p[0])):
            f.write(f"{start_cs / 100:.2f} {end_cs / 100:.2f} {side}: {text}\n\n")
    total_turns += len(turns)
    print(f"{name}: {len(turns)} turns, {frames / RATE:.2f} s", file=sys.stderr)

with open(os.path.join(out, "README.TXT"), "w") as f:
    f.write("""SYNTHETIC Fisher-English-layout corpus (NOT LDC data)
=====================================================

Made by corpora/scripts/make-mini-fisher.sh of the ds2-data repository with
espeak-ng. It mimics the folder structure and file formats of Fisher English
Training Parts 1 and 2 (LDC2004S13/LDC2005S13 speech, LDC2004T19/LDC2005T19
transcripts) so that Fisher loaders can be exercised without the licensed corpus.

Audio:       2-channel 8 kHz u-law NIST SPHERE (side A = channel 1, side B =
             channel 2), uncompressed (LDC's files are shorten-compressed).
Transcripts: "<start> <end> <side>: <text>" per turn, with LDC markup.
""")
print(f"done: {len(CONVERSATIONS)} conversations, {total_turns} turns -> {out}", file=sys.stderr)
PY
