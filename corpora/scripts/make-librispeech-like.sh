#!/usr/bin/env bash
# make-librispeech-like.sh - synthesize a small corpus in the LibriSpeech
# distribution layout with espeak-ng (deterministic for a given seed).
#
#   <out>/LibriSpeech/SPEAKERS.TXT, CHAPTERS.TXT, README.TXT
#   <out>/LibriSpeech/<split>/<spk>/<chap>/<spk>-<chap>.trans.txt
#   <out>/LibriSpeech/<split>/<spk>/<chap>/<spk>-<chap>-<NNNN>.flac  (16 kHz mono s16)
#
# Each speaker is one (espeak-ng voice+variant, rate, pitch, peak level)
# combination; it reads one or two "chapters". Speakers and sentences are
# disjoint across splits (dev/test text is held out from train). Inside a split
# a sentence is reused (by a different speaker) only when the split's share of
# the sentence list is exhausted.
#
# Requires: bash, python3 (stdlib only), espeak-ng, sox (with FLAC), xargs.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<EOF
usage: $(basename "$0") --out DIR [options]

  --out DIR          output directory; the corpus root is DIR/LibriSpeech (required)
  --minutes N        target total minutes of audio, may be fractional (default 4)
  --splits SPEC      comma list split:fraction
                     (default "train-clean-100:0.7,dev-clean:0.15,test-clean:0.15")
  --sentences FILE   one sentence per line (default: $SCRIPT_DIR/../text/sentences.txt)
  --seed N           RNG seed for the plan (default 1)
  --jobs N           parallel synthesis jobs (default 2)
  --force            delete an existing DIR/LibriSpeech first
  -h, --help         this help
EOF
}

OUT=""
MINUTES=4
SPLITS="train-clean-100:0.7,dev-clean:0.15,test-clean:0.15"
SENTENCES="$SCRIPT_DIR/../text/sentences.txt"
SEED=1
JOBS=2
FORCE=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="${2:?--out needs a value}"; shift 2 ;;
    --minutes) MINUTES="${2:?--minutes needs a value}"; shift 2 ;;
    --splits) SPLITS="${2:?--splits needs a value}"; shift 2 ;;
    --sentences) SENTENCES="${2:?--sentences needs a value}"; shift 2 ;;
    --seed) SEED="${2:?--seed needs a value}"; shift 2 ;;
    --jobs) JOBS="${2:?--jobs needs a value}"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

[[ -n "$OUT" ]] || { echo "error: --out is required" >&2; usage >&2; exit 2; }
[[ -f "$SENTENCES" ]] || { echo "error: sentences file not found: $SENTENCES" >&2; exit 2; }
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "error: bad --minutes: $MINUTES" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "error: bad --seed: $SEED" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "error: bad --jobs: $JOBS" >&2; exit 2; }
for tool in python3 espeak-ng sox soxi xargs; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done
sox_help="$(sox -h 2>/dev/null || true)"
grep -q 'AUDIO FILE FORMATS:.* flac' <<<"$sox_help" || { echo "error: sox lacks FLAC support" >&2; exit 2; }

ROOT="$OUT/LibriSpeech"
if [[ -e "$ROOT" ]]; then
  if [[ "$FORCE" == 1 ]]; then
    rm -rf -- "$ROOT"
  else
    echo "error: $ROOT exists (use --force to replace it)" >&2; exit 2
  fi
fi
mkdir -p "$ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mkls.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

# ---------------------------------------------------------------------------
# 1. Plan (pure function of sentences, minutes, splits, seed).
#    jobs.tsv : uttid voice rate pitch peak-dB flac-path text
#    meta.json: speakers / chapters for the .TXT files
# ---------------------------------------------------------------------------
python3 - "$SENTENCES" "$MINUTES" "$SPLITS" "$SEED" "$ROOT" "$WORK" <<'PY'
import json, math, os, random, re, sys
from collections import deque

sent_path, minutes, splits_spec, seed, root, work = sys.argv[1:7]
minutes, seed = float(minutes), int(seed)
rng = random.Random(seed)

# --- sentences -------------------------------------------------------------
VALID = re.compile(r"^[A-Za-z']+( [A-Za-z']+)*$")
sents, seen = [], set()
for raw in open(sent_path, encoding="utf-8"):
    s = " ".join(raw.split())
    if not s or s.startswith("#"):
        continue
    if not VALID.match(s):
        sys.exit(f"error: sentence has characters other than letters/space/apostrophe: {s!r}")
    if s.upper() not in seen:
        seen.add(s.upper())
        sents.append(s)

# --- splits ----------------------------------------------------------------
splits = []
for part in splits_spec.split(","):
    name, _, frac = part.strip().partition(":")
    if not name or not frac:
        sys.exit(f"error: bad split spec {part!r} (want name:fraction)")
    splits.append((name, float(frac)))
total_frac = sum(f for _, f in splits)
if total_frac <= 0:
    sys.exit("error: split fractions must sum to > 0")
splits = [(n, f / total_frac) for n, f in splits]
if len({n for n, _ in splits}) != len(splits):
    sys.exit("error: duplicate split name")

# Disjoint sentence partition: shuffle once, cut proportionally.
order = sents[:]
rng.shuffle(order)
pools, start = {}, 0
for i, (name, frac) in enumerate(splits):
    end = len(order) if i == len(splits) - 1 else start + round(frac * len(order))
    pools[name] = order[start:end]
    if not pools[name]:
        sys.exit(f"error: split {name} gets no sentences; add sentences or change fractions")
    start = end

# --- voices ----------------------------------------------------------------
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029",
           "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = {
    "M": ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "paul", "rob"],
    "F": ["f1", "f2", "f3", "f4", "f5", "Annie", "Andrea", "linda", "steph", "belinda"],
}
RATES = list(range(130, 191, 10))
PITCHES = list(range(35, 66, 5))
GAINS = [-3, -5, -7, -9, -11]   # per-speaker peak level, dBFS

def est_dur(text, rate):
    # Fitted on espeak-ng 1.51 output after silence trimming + 0.2 s padding.
    return 0.3 + 0.054 * len(text) * 160.0 / rate

MIN_DUR, MAX_DUR = 1.5, 6.0
AVG_DUR = sum(est_dur(s, 160) for s in sents) / len(sents)

used_spk_ids, used_chap_ids, used_voices = set(), set(), set()
variant_bags = {"M": [], "F": []}
sex_toggle = rng.randrange(2)

def new_id(lo, hi, used):
    while True:
        x = rng.randrange(lo, hi)
        if x not in used:
            used.add(x)
            return x

def new_speaker(sex):
    for _ in range(1000):
        if not variant_bags[sex]:
            variant_bags[sex] = VARIANTS[sex][:]
            rng.shuffle(variant_bags[sex])
        variant = variant_bags[sex].pop()
        accent = rng.choice(ACCENTS)
        rate, pitch, gain = rng.choice(RATES), rng.choice(PITCHES), rng.choice(GAINS)
        voice = accent + ("+" + variant if variant else "")
        if (voice, rate, pitch) not in used_voices:
            used_voices.add((voice, rate, pitch))
            return dict(id=new_id(10, 9000, used_spk_ids), sex=sex, voice=voice,
                        rate=rate, pitch=pitch, gain=gain)
    sys.exit("error: ran out of distinct voice combinations")

speakers, chapters, jobs = [], [], []
target_total = minutes * 60.0
for name, frac in splits:
    target = target_total * frac
    n_est = max(1, round(target / AVG_DUR))
    n_spk = max(2, min(200, round(math.sqrt(n_est))))
    spks = []
    for i in range(n_spk):
        sex = "MF"[(i + sex_toggle) % 2]
        spks.append(new_speaker(sex))
    # Utterance slots round-robin over speakers until the target is reached.
    pool_all = pools[name]
    pool = deque(pool_all)
    said = {sp["id"]: set() for sp in spks}
    utts = {sp["id"]: [] for sp in spks}
    acc, k, passes = 0.0, 0, 1
    while acc < target:
        sp = spks[k % n_spk]
        k += 1
        pick = None
        for attempt in range(3):
            relax = attempt == 2
            for j, s in enumerate(pool):
                d = est_dur(s, sp["rate"])
                if s not in said[sp["id"]] and (relax or MIN_DUR <= d <= MAX_DUR):
                    pick = j
                    break
            if pick is not None:
                break
            refill = pool_all[:]          # split's sentences exhausted: new pass
            rng.shuffle(refill)
            pool.extend(refill)
            passes += 1
        if pick is None:
            sys.exit(f"error: cannot find a sentence for speaker {sp['id']} in {name}")
        s = pool[pick]
        del pool[pick]
        said[sp["id"]].add(s)
        utts[sp["id"]].append(s)
        acc += est_dur(s, sp["rate"])
    for sp in spks:
        sp["subset"] = name
        speakers.append(sp)
        lines = utts[sp["id"]]
        n_ch = 2 if (len(lines) >= 4 and rng.random() < 0.5) else 1
        cut = math.ceil(len(lines) / n_ch)
        for c in range(n_ch):
            part = lines[c * cut:(c + 1) * cut]
            if not part:
                continue
            ch = new_id(1000, 300000, used_chap_ids)
            chapters.append(dict(id=ch, reader=sp["id"], subset=name,
                                 n=len(part), proj=new_id(100, 20000, set()),
                                 book=new_id(100, 60000, set())))
            d = os.path.join(root, name, str(sp["id"]), str(ch))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{sp['id']}-{ch}.trans.txt"), "w") as f:
                for u, text in enumerate(part):
                    uid = f"{sp['id']}-{ch}-{u:04d}"
                    f.write(f"{uid} {text.upper()}\n")
                    jobs.append((uid, sp["voice"], sp["rate"], sp["pitch"], sp["gain"],
                                 os.path.join(d, uid + ".flac"), text))
    print(f"plan: {name}: {n_spk} speakers, {sum(len(v) for v in utts.values())} "
          f"utterances, ~{acc / 60:.2f} min estimated, "
          f"{len(pool_all)} sentences available, {passes} pass(es)", file=sys.stderr)

with open(os.path.join(work, "jobs.tsv"), "w") as f:
    for j in jobs:
        f.write("\t".join(map(str, j)) + "\n")
with open(os.path.join(work, "meta.json"), "w") as f:
    json.dump(dict(speakers=speakers, chapters=chapters,
                   splits=[n for n, _ in splits], seed=seed, minutes=minutes), f)
PY

# ---------------------------------------------------------------------------
# 2. Synthesis: espeak-ng -> 22.05 kHz wav -> trim silence, pad 0.1 s each
#    side, normalize to the speaker's peak level, high-quality resample to
#    16 kHz, 16-bit mono FLAC. `sox -R` makes
#    the (TPDF) dither repeatable, so output bytes are identical across runs.
# ---------------------------------------------------------------------------
synth_one() {
  local uid voice rate pitch peak out text tmp
  IFS=$'\t' read -r uid voice rate pitch peak out text <<<"$1"
  tmp="$MKLS_WORK/$uid.wav"
  espeak-ng -v "$voice" -s "$rate" -p "$pitch" -a 80 -w "$tmp" "$text"
  sox -R "$tmp" -C 8 -r 16000 -c 1 -b 16 "$out" \
    silence 1 0.02 -50d reverse silence 1 0.02 -50d reverse pad 0.1 0.1 \
    gain -n "$peak" rate -v
  rm -f -- "$tmp"
}
export -f synth_one
export MKLS_WORK="$WORK"

n_jobs=$(wc -l <"$WORK/jobs.tsv")
echo "synthesizing $n_jobs utterances with $JOBS parallel jobs ..." >&2
tr '\n' '\0' <"$WORK/jobs.tsv" | xargs -0 -P "$JOBS" -n 1 bash -c 'synth_one "$1"' _

# ---------------------------------------------------------------------------
# 3. Durations -> SPEAKERS.TXT, CHAPTERS.TXT, README.TXT
# ---------------------------------------------------------------------------
cut -f1,6 "$WORK/jobs.tsv" | while IFS=$'\t' read -r uid path; do
  printf '%s\t%s\n' "$uid" "$(soxi -s "$path")"
done >"$WORK/samples.tsv"

python3 - "$ROOT" "$WORK" <<'PY'
import json, os, sys
root, work = sys.argv[1:3]
meta = json.load(open(os.path.join(work, "meta.json")))
secs = {}
for line in open(os.path.join(work, "samples.tsv")):
    uid, n = line.split("\t")
    secs[uid] = int(n) / 16000.0
spk_sec, ch_sec, split_sec, split_n = {}, {}, {}, {}
for uid, s in secs.items():
    spk, ch, _ = uid.split("-")
    spk_sec[int(spk)] = spk_sec.get(int(spk), 0.0) + s
    ch_sec[int(ch)] = ch_sec.get(int(ch), 0.0) + s
subset_of = {sp["id"]: sp["subset"] for sp in meta["speakers"]}
for uid, s in secs.items():
    sub = subset_of[int(uid.split("-")[0])]
    split_sec[sub] = split_sec.get(sub, 0.0) + s
    split_n[sub] = split_n.get(sub, 0) + 1

with open(os.path.join(root, "SPEAKERS.TXT"), "w") as f:
    f.write("""; Some pipe(|) separated metadata about the synthetic "readers" of this corpus.
; Each reader is one espeak-ng voice/variant, speaking rate (-s), pitch (-p)
; and peak level combination; NAME records that combination.
;
; The meaning of the fields in left-to-right order is as follows:
;
; reader_id: numeric ID of the (synthetic) reader
; gender: 'F' for female, 'M' for male (from the espeak-ng voice variant)
; subset: the corpus subset to which the reader's audio is assigned
; duration: total number of minutes of speech by the reader, included in the corpus
; name: the espeak-ng settings used for this reader
;
;ID  |SEX| SUBSET           |MINUTES| NAME
""")
    for sp in sorted(meta["speakers"], key=lambda x: x["id"]):
        name = f"espeak-ng {sp['voice']} -s {sp['rate']} -p {sp['pitch']}, peak {sp['gain']} dBFS"
        f.write(f"{sp['id']:<5}| {sp['sex']} | {sp['subset']:<16} | "
                f"{spk_sec[sp['id']] / 60:5.2f} | {name}\n")

with open(os.path.join(root, "CHAPTERS.TXT"), "w") as f:
    f.write("""; Some pipe(|) separated metadata about the (synthetic) chapters in the corpus.
;
; The meaning of the fields in left-to-right order is as follows:
;
; chapter_id: numeric ID of the chapter
; reader_id: the ID of the reader (see SPEAKERS.TXT)
; duration: how many minutes of this chapter are used in the corpus
; subset: the corpus subset to which this chapter is assigned
; project_id: placeholder number (no LibriVox project behind synthetic audio)
; book_id: placeholder number (no Project Gutenberg book behind synthetic text)
; chapter_title: a descriptive title
; project_title: a descriptive title
;
;ID    |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE                          | PROJECT TITLE
""")
    for ch in sorted(meta["chapters"], key=lambda x: x["id"]):
        title = f"Synthetic chapter {ch['id']}"
        f.write(f"{ch['id']:<7}| {ch['reader']:<5}| {ch_sec[ch['id']] / 60:5.2f} | "
                f"{ch['subset']:<16} | {ch['proj']:<5}| {ch['book']:<6}| {title:<35}| "
                f"ds2-data espeak-ng synthetic speech\n")

total = sum(secs.values())
with open(os.path.join(root, "README.TXT"), "w") as f:
    f.write(f"""SYNTHETIC LibriSpeech-layout corpus (NOT LibriSpeech audio)
=========================================================

All audio was synthesized with espeak-ng from plain English sentences by
corpora/scripts/make-librispeech-like.sh of the ds2-data repository
(seed {meta['seed']}, target {meta['minutes']:g} minutes). It only mimics the
directory layout and metadata formats of LibriSpeech (OpenSLR SLR12) so that
LibriSpeech loaders can be exercised without downloading the real corpus.

Layout:  <subset>/<reader>/<chapter>/<reader>-<chapter>-<NNNN>.flac
         <subset>/<reader>/<chapter>/<reader>-<chapter>.trans.txt
Audio:   FLAC, 16 kHz, mono, 16-bit.
Text:    upper case A-Z, space and apostrophe only.
Readers: one espeak-ng voice/rate/pitch/level combination each
         (see SPEAKERS.TXT); readers and sentences are disjoint across subsets.

Subsets:
""")
    for sub in meta["splits"]:
        f.write(f"  {sub:<16} {split_n.get(sub, 0):5d} utterances  "
                f"{split_sec.get(sub, 0.0) / 60:6.2f} minutes\n")
    f.write(f"  {'total':<16} {len(secs):5d} utterances  {total / 60:6.2f} minutes\n")
print(f"done: {len(secs)} utterances, {total / 60:.2f} minutes -> {root}", file=sys.stderr)
PY
