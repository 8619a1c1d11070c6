"""Datasets written by the Swift binary (DS2DATA_BINARY, set by scripts/test) from the
bundled corpus, once per test session."""

import os
import subprocess

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary():
    path = os.environ.get("DS2DATA_BINARY") or os.path.join(REPOSITORY, ".build/x86_64-unknown-linux-gnu/release/ds2-data")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path}: no ds2-data binary; set DS2DATA_BINARY (scripts/test does)")
    return path


def run(*arguments, check=True):
    result = subprocess.run([binary(), *arguments], cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
    if check and result.returncode not in (0, 3):
        raise RuntimeError(f"ds2-data {' '.join(arguments)}: exit {result.returncode}: {result.stderr}")
    return result


def recipe(tmp, name, replacements):
    with open(os.path.join(REPOSITORY, "recipes/mini-librispeech.yaml"), encoding="utf-8") as f:
        text = f.read()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """name → dataset folder: float16/global (the bundled recipe), float32/utterance,
    float16/none, uint8/global, float32/global, and an augmented dataset (float16/global)."""
    tmp = str(tmp_path_factory.mktemp("datasets"))
    made = {}
    variants = {
        "float16-global": [],
        "float32-utterance": [("dtype: float16", "dtype: float32"), ("mode: global", "mode: utterance")],
        "float16-none": [("mode: global", "mode: none")],
        "uint8-global": [("dtype: float16", "dtype: uint8")],
        "float32-global": [("dtype: float16", "dtype: float32")],
    }
    for name, replacements in variants.items():
        out = os.path.join(tmp, name)
        run("prepare", recipe(tmp, name, replacements), "--output", out, "-q")
        made[name] = out
    out = os.path.join(tmp, "augmented")
    run("augment", os.path.join(REPOSITORY, "recipes/mini-librispeech.yaml"), "--output", out, "-q")
    made["augmented"] = out
    return made
