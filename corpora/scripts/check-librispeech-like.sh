#!/usr/bin/env bash
# check-librispeech-like.sh ROOT - sanity-check a LibriSpeech-layout corpus
# (ROOT is the directory containing SPEAKERS.TXT, i.e. .../LibriSpeech).
# Checks: flac format (16 kHz, mono, 16-bit FLAC), trans.txt <-> flac
# correspondence, transcript alphabet (A-Z, space, apostrophe), id order,
# speaker/text disjointness across subsets, SPEAKERS.TXT / CHAPTERS.TXT
# coverage. Prints per-subset counts and durations. Exit status 1 on error.
set -euo pipefail
ROOT="${1:?usage: $0 .../LibriSpeech}"
[[ -f "$ROOT/SPEAKERS.TXT" ]] || { echo "no SPEAKERS.TXT in $ROOT" >&2; exit 2; }
command -v soxi >/dev/null || { echo "soxi not found" >&2; exit 2; }

tmp="$(mktemp)"; trap 'rm -f -- "$tmp"' EXIT
# path <TAB> rate <TAB> channels <TAB> bits <TAB> encoding <TAB> samples
find "$ROOT" -name '*.flac' -print0 | sort -z | while IFS= read -r -d '' f; do
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$f" "$(soxi -r "$f")" "$(soxi -c "$f")" \
    "$(soxi -b "$f")" "$(soxi -e "$f")" "$(soxi -s "$f")"
done >"$tmp"

python3 - "$ROOT" "$tmp" <<'PY'
import glob, os, re, sys
from collections import defaultdict
root, info = sys.argv[1:3]
errors = []
def err(m):
    errors.append(m)

flacs = {}
for line in open(info):
    path, rate, ch, bits, enc, n = line.rstrip("\n").split("\t")
    uid = os.path.basename(path)[:-5]
    flacs[uid] = path
    if (rate, ch, bits) != ("16000", "1", "16") or "FLAC" not in enc:
        err(f"{path}: rate={rate} channels={ch} bits={bits} encoding={enc}")
    flacs[uid] = (path, int(n) / 16000.0)

TXT = re.compile(r"^[A-Z']+( [A-Z']+)*$")
subsets = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
trans_ids, spk_subset, texts = set(), {}, defaultdict(set)
chapters = set()
print(f"{'subset':<18}{'spk':>5}{'chap':>6}{'utts':>7}{'minutes':>9}{'min s':>7}{'max s':>7}")
for sub in subsets:
    spks, chs, durs = set(), set(), []
    for t in sorted(glob.glob(os.path.join(root, sub, "*", "*", "*.trans.txt"))):
        spk, ch = t.split(os.sep)[-3:-1]
        if os.path.basename(t) != f"{spk}-{ch}.trans.txt":
            err(f"{t}: name does not match directory")
        if spk in spk_subset and spk_subset[spk] != sub:
            err(f"speaker {spk} in {spk_subset[spk]} and {sub}")
        spk_subset[spk] = sub
        spks.add(spk); chs.add(ch); chapters.add(ch)
        ids = []
        for ln, line in enumerate(open(t), 1):
            uid, _, text = line.rstrip("\n").partition(" ")
            ids.append(uid)
            if not re.fullmatch(rf"{spk}-{ch}-\d{{4}}", uid):
                err(f"{t}:{ln}: bad id {uid!r}")
            if not TXT.match(text):
                err(f"{t}:{ln}: bad transcript {text!r}")
            texts[sub].add(text)
            trans_ids.add(uid)
            if uid not in flacs:
                err(f"{t}:{ln}: no flac for {uid}")
            else:
                p, d = flacs[uid]
                if os.path.dirname(p) != os.path.dirname(t):
                    err(f"{p}: not next to {t}")
                durs.append(d)
        if ids != sorted(ids):
            err(f"{t}: ids not sorted")
    if durs:
        print(f"{sub:<18}{len(spks):>5}{len(chs):>6}{len(durs):>7}{sum(durs) / 60:>9.2f}"
              f"{min(durs):>7.2f}{max(durs):>7.2f}")
for uid in sorted(set(flacs) - trans_ids):
    err(f"{flacs[uid][0]}: not in any trans.txt")
tot = sum(d for _, d in flacs.values())
print(f"{'total':<18}{len(spk_subset):>5}{len(chapters):>6}{len(flacs):>7}{tot / 60:>9.2f}")

subs = list(texts)
for i in range(len(subs)):
    for j in range(i + 1, len(subs)):
        n = len(texts[subs[i]] & texts[subs[j]])
        if n:
            err(f"{n} transcripts shared by {subs[i]} and {subs[j]}")

def rows(name):
    out = []
    for line in open(os.path.join(root, name)):
        if line.startswith(";") or not line.strip():
            continue
        out.append([c.strip() for c in line.split("|")])
    return out
sp_rows = {r[0]: r for r in rows("SPEAKERS.TXT")}
for spk, sub in spk_subset.items():
    r = sp_rows.get(spk)
    if r is None:
        err(f"speaker {spk} missing from SPEAKERS.TXT")
    elif r[1] not in ("M", "F") or r[2] != sub:
        err(f"SPEAKERS.TXT row for {spk} is wrong: {r}")
ch_rows = {r[0]: r for r in rows("CHAPTERS.TXT")}
for ch in chapters:
    if ch not in ch_rows:
        err(f"chapter {ch} missing from CHAPTERS.TXT")
sexes = defaultdict(set)
for spk, sub in spk_subset.items():
    if spk in sp_rows:
        sexes[sp_rows[spk][1]].add(spk)
print("speakers by sex:", {k: len(v) for k, v in sorted(sexes.items())})

for e in errors[:50]:
    print("ERROR:", e)
print(f"{len(errors)} error(s)")
sys.exit(1 if errors else 0)
PY
