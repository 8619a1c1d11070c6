#!/usr/bin/env python3
"""Build corpora/text/sentences.txt.

sentences.txt = the hand-written sentences in corpora/text/handwritten.txt
              + sentences drawn (seeded, deterministic) from a small grammar
                of everyday actions, people, objects and time phrases.

Every line: ASCII letters, spaces and apostrophes only, 4..14 words, distinct
(case-insensitively). Usage:

    python3 corpora/scripts/make-sentences.py            # rewrite sentences.txt
    python3 corpora/scripts/make-sentences.py --check    # only validate
"""
import argparse
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = os.path.normpath(os.path.join(HERE, "..", "text"))

SEED = 1234
N_GENERATED = 1000

SUBJECTS = [
    "my neighbor", "the old farmer", "her younger brother", "the tall nurse",
    "our teacher", "the baker", "the quiet boy", "the new clerk", "his aunt",
    "the captain", "the bus driver", "my cousin", "the girl next door",
    "the painter", "the mayor", "the shy student", "the tired waiter",
    "the doctor", "our landlord", "the fisherman", "my grandmother",
    "the young couple", "the twins", "the gardener", "my father",
    "Anna", "Peter", "Susan", "James", "Lucy", "Henry", "Clara", "Walter",
    "Ruth", "Frank", "Helen", "George", "Alice", "Oliver", "Grace", "Edward",
]

# (base form, simple past)
VERB_PHRASES = [
    ("paint the garden fence", "painted the garden fence"),
    ("wash the dinner dishes", "washed the dinner dishes"),
    ("fix the broken chair", "fixed the broken chair"),
    ("bake a loaf of bread", "baked a loaf of bread"),
    ("plant tomatoes by the wall", "planted tomatoes by the wall"),
    ("lock the back door", "locked the back door"),
    ("feed the hungry cats", "fed the hungry cats"),
    ("sweep the kitchen floor", "swept the kitchen floor"),
    ("carry the boxes upstairs", "carried the boxes upstairs"),
    ("write a long letter home", "wrote a long letter home"),
    ("mend the torn curtain", "mended the torn curtain"),
    ("count the coins in the jar", "counted the coins in the jar"),
    ("clean the windows", "cleaned the windows"),
    ("chop wood for the stove", "chopped wood for the stove"),
    ("pick apples in the orchard", "picked apples in the orchard"),
    ("walk the dog to the park", "walked the dog to the park"),
    ("return the library books", "returned the library books"),
    ("buy fresh fish at the market", "bought fresh fish at the market"),
    ("sell the old bicycle", "sold the old bicycle"),
    ("hang the pictures in the hall", "hung the pictures in the hall"),
    ("fold the clean laundry", "folded the clean laundry"),
    ("water the plants on the porch", "watered the plants on the porch"),
    ("polish the silver spoons", "polished the silver spoons"),
    ("rake the leaves in the yard", "raked the leaves in the yard"),
    ("milk the cows", "milked the cows"),
    ("mow the front lawn", "mowed the front lawn"),
    ("bring a basket of plums", "brought a basket of plums"),
    ("cook a large pot of soup", "cooked a large pot of soup"),
    ("find the missing key", "found the missing key"),
    ("call the doctor", "called the doctor"),
    ("visit the old castle", "visited the old castle"),
    ("fill the bucket with water", "filled the bucket with water"),
    ("empty the trash cans", "emptied the trash cans"),
    ("build a shelf for the books", "built a shelf for the books"),
    ("dig a hole for the new tree", "dug a hole for the new tree"),
    ("catch the early train", "caught the early train"),
    ("drive to the coast", "drove to the coast"),
    ("climb the hill behind the farm", "climbed the hill behind the farm"),
    ("repair the leaking roof", "repaired the leaking roof"),
    ("sew a patch on the coat", "sewed a patch on the coat"),
    ("wrap the presents", "wrapped the presents"),
    ("scrub the pots and pans", "scrubbed the pots and pans"),
    ("stack the firewood", "stacked the firewood"),
    ("tune the old piano", "tuned the old piano"),
    ("check the oil in the car", "checked the oil in the car"),
    ("pack a lunch for the trip", "packed a lunch for the trip"),
    ("sharpen the kitchen knives", "sharpened the kitchen knives"),
    ("trim the hedge", "trimmed the hedge"),
    ("shovel the snow off the path", "shoveled the snow off the path"),
    ("take the bread out of the oven", "took the bread out of the oven"),
    ("fetch water from the well", "fetched water from the well"),
    ("light a fire in the hearth", "lit a fire in the hearth"),
    ("air out the musty blankets", "aired out the musty blankets"),
    ("sort the old letters", "sorted the old letters"),
    ("measure the window frame", "measured the window frame"),
    ("pay the grocer", "paid the grocer"),
    ("lend the neighbors a ladder", "lent the neighbors a ladder"),
    ("send a parcel to the city", "sent a parcel to the city"),
    ("borrow a saw from next door", "borrowed a saw from next door"),
    ("close the shutters", "closed the shutters"),
    ("open the windows wide", "opened the windows wide"),
    ("patch the hole in the fence", "patched the hole in the fence"),
    ("oil the squeaky hinges", "oiled the squeaky hinges"),
    ("grind the coffee beans", "ground the coffee beans"),
    ("boil the eggs", "boiled the eggs"),
    ("peel the potatoes", "peeled the potatoes"),
    ("tidy the cluttered desk", "tidied the cluttered desk"),
    ("wind the old clock", "wound the old clock"),
    ("saddle the gray horse", "saddled the gray horse"),
    ("gather eggs from the henhouse", "gathered eggs from the henhouse"),
    ("ring the bell for supper", "rang the bell for supper"),
    ("clear the snow from the steps", "cleared the snow from the steps"),
    ("hang the wash on the line", "hung the wash on the line"),
]

PAST_TIMES = [
    "after the storm", "before breakfast", "on Sunday morning",
    "late last night", "early this morning", "last week",
    "yesterday afternoon", "while it was raining", "before the guests arrived",
    "without any help", "in the cold wind", "after supper", "just before dark",
    "on the first warm day", "during the holiday", "while the kettle boiled",
    "as the sun came up", "before anyone else woke up", "the day before the fair",
    "after a long day at work", "in a great hurry", "with great care",
]

FUTURE_TIMES = [
    "tomorrow morning", "next week", "after lunch", "before the guests arrive",
    "on Saturday", "later this evening", "when the rain stops",
    "first thing in the morning", "before it gets dark", "after the holidays",
    "as soon as possible", "before winter comes", "this afternoon",
]

PLEASE_TIMES = [
    "before you go to bed", "when you have time", "before the guests arrive",
    "after lunch", "before it gets dark", "this afternoon",
    "first thing tomorrow", "while I am out", "before we leave",
]

SMALL_THINGS = ["lamp", "clock", "vase", "jar", "bowl", "kettle", "basket",
                "mirror", "box", "teapot", "candlestick", "radio"]
LARGE_THINGS = ["chair", "rug", "desk", "trunk", "bench", "table", "sofa",
                "cabinet", "bookcase", "bed"]
THING_ADJS = ["old", "new", "small", "large", "blue", "green", "red", "white",
              "brown", "black"]
SMALL_PLACES = ["on the shelf", "on the mantel", "in the window",
                "on the kitchen table", "in the attic", "by the door"]
LARGE_PLACES = ["in the hall", "by the window", "in the attic",
                "in the corner", "on the porch", "in the spare room",
                "near the fireplace"]
THING_STATES = ["covered in dust", "badly scratched", "older than it looks",
                "a gift from my aunt", "for sale", "easy to miss",
                "worth a lot of money", "too heavy to move alone",
                "the first thing guests notice", "from my grandmother's house"]
COPULAS = ["is", "was"]


def cap(s):
    return s[0].upper() + s[1:]


def gen_one(rng):
    t = rng.choices("ABCDEFGH", weights=[30, 12, 10, 10, 12, 8, 8, 10])[0]
    s = rng.choice(SUBJECTS)
    base, past = rng.choice(VERB_PHRASES)
    if t == "A":
        return f"{cap(s)} {past} {rng.choice(PAST_TIMES)}"
    if t == "B":
        return f"{cap(s)} will {base} {rng.choice(FUTURE_TIMES)}"
    if t == "C":
        return f"Please {base} {rng.choice(PLEASE_TIMES)}"
    if t == "D":
        return f"Did {s} {base} {rng.choice(PAST_TIMES)}"
    if t == "E":
        if rng.random() < 0.55:
            noun, place = rng.choice(SMALL_THINGS), rng.choice(SMALL_PLACES)
        else:
            noun, place = rng.choice(LARGE_THINGS), rng.choice(LARGE_PLACES)
        return (f"The {rng.choice(THING_ADJS)} {noun} {place} "
                f"{rng.choice(COPULAS)} {rng.choice(THING_STATES)}")
    if t == "F":
        return f"{cap(s)} wanted to {base} {rng.choice(PAST_TIMES)}"
    if t == "G":
        return f"{cap(s)} promised to {base} {rng.choice(FUTURE_TIMES)}"
    s2 = rng.choice([x for x in SUBJECTS if x != s])
    return f"{cap(s)} asked {s2} to {base}"


VALID = re.compile(r"^[A-Za-z']+( [A-Za-z']+)*$")


def valid(line):
    return bool(VALID.match(line)) and 4 <= len(line.split()) <= 14


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    out_path = os.path.join(TEXT, "sentences.txt")
    if a.check:
        lines = open(out_path, encoding="ascii").read().splitlines()
        bad = [l for l in lines if not valid(l)]
        keys = [l.lower() for l in lines]
        dup = len(keys) - len(set(keys))
        print(f"{len(lines)} sentences, {len(bad)} invalid, {dup} duplicates")
        for b in bad[:20]:
            print("  invalid:", repr(b))
        sys.exit(1 if bad or dup or len(lines) < 800 else 0)

    hand = [l.strip() for l in open(os.path.join(TEXT, "handwritten.txt"),
                                    encoding="ascii") if l.strip()]
    out, seen = [], set()
    for l in hand:
        if not valid(l):
            sys.exit(f"invalid hand-written sentence: {l!r}")
        if l.lower() not in seen:
            seen.add(l.lower())
            out.append(l)
    rng = random.Random(SEED)
    n = 0
    while n < N_GENERATED:
        l = gen_one(rng)
        if valid(l) and l.lower() not in seen:
            seen.add(l.lower())
            out.append(l)
            n += 1
    with open(out_path, "w", encoding="ascii") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(out)} sentences ({len(hand)} hand-written, "
          f"{N_GENERATED} generated) to {out_path}")


if __name__ == "__main__":
    main()
