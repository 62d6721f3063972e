"""Issue 27 item 2, done when: a CSV with `image`, `audio` (WAV), two numeric
columns and `label` runs through `ssnas run --dataset csv` to an export whose
signature takes the raw columns.

The CSV (generated here, ~200 rows) also has a categorical column and an `id`
column. The run is started with `ssnas search` and finished by `ssnas run` on
the same folder (a resumed run); the export is then loaded in a fresh process
that imports no ssnas_tf, and `ssnas predict` on the CSV carries the ids.

    python -m pytest tests/test_slow_tabular_run.py -m slow -q -s
"""

import csv
import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--epochs", "1", "--backbone-epochs", "1", "--pretrain-epochs", "1",
        "--finetune-epochs", "2", "--batch-size", "32", "--finetune-batch-size", "16",
        "--backbone-width", "8", "--channels", "8", "--length", "4",
        "--num-cells", "1", "--num-steps", "1", "--multiplier", "1",
        "--label-fraction", "0.5", "--max-steps-per-epoch", "4"]
RATE = 8000
CLASSES = ("low", "mid", "high")


def write_table(folder, rows=200, seed=0):
    """A CSV of images (PNG), WAV tones, numbers and a category per row,
    every column carrying some class signal."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "media"), exist_ok=True)
    lines = [["id", "image", "audio", "size", "weight", "colour", "label"]]
    t = np.arange(RATE // 4) / RATE
    for i in range(rows):
        y = i % len(CLASSES)
        pixels = rng.integers(0, 60, (12, 12, 3))
        pixels[:, :, y] += 150  # class colour
        Image.fromarray(pixels.astype("uint8")).save(
            os.path.join(folder, "media", f"{i}.png"))
        tone = 0.4 * np.sin(2 * np.pi * (400 + 900 * y) * t) + 0.05 * rng.normal(size=len(t))
        with wave.open(os.path.join(folder, "media", f"{i}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(RATE)
            f.writeframes((np.clip(tone, -1, 1) * 32767).astype("<i2").tobytes())
        size = "" if i % 17 == 0 else f"{y + rng.normal(0, 0.5):.3f}"  # some missing
        lines.append([f"row-{i}", f"media/{i}.png", f"media/{i}.wav", size,
                      f"{10 * y + rng.normal(0, 3):.2f}",
                      ["red", "green", "blue"][y] if rng.random() < 0.8 else "grey",
                      CLASSES[y]])
    path = os.path.join(folder, "table.csv")
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(lines)
    return path


def _cli(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "ssnas_tf.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


SERVE = r"""
import json, sys
import numpy as np
import tensorflow as tf
path = sys.argv[1]
assert "ssnas_tf" not in sys.modules
serve = tf.saved_model.load(path).signatures["serving_default"]
specs = serve.structured_input_signature[1]
print(json.dumps({n: [s.dtype.name, s.shape.as_list()] for n, s in specs.items()}))
raw = {"image": tf.zeros([2, 12, 12, 3], tf.uint8), "audio": tf.zeros([2, 2000]),
       "size": tf.constant([np.nan, 1.0]), "weight": tf.constant([0.0, 20.0]),
       "colour": tf.constant([b"red", b"never seen"])}
p = serve(**{n: raw[n] for n in specs})["probabilities"].numpy()
assert p.shape == (2, 3) and np.allclose(p.sum(1), 1, atol=1e-5), p
bad = {n: v[:1] for n, v in raw.items() if n in specs}
bad["size"] = tf.constant([np.inf])
try:
    serve(**bad)
    print("inf accepted")
except tf.errors.InvalidArgumentError as error:
    print("inf refused:", "size" in error.message)
"""


@pytest.mark.slow
def test_csv_with_image_audio_and_columns_runs_to_a_raw_column_export(tmp_path):
    table = write_table(str(tmp_path / "data"))
    output = str(tmp_path / "run")
    flags = ["--dataset", "csv", "--data-dir", table, "--output", output,
             "--dataset-option", "image_size=[12,12]",
             "--dataset-option", "audio_seconds=0.25", *TINY]
    _cli("search", *flags, cwd=tmp_path)  # backbones + search, then resumed:
    _cli("run", *flags, cwd=tmp_path)
    with open(os.path.join(output, "results.json")) as f:
        results = json.load(f)
    export = results["export_dir"]
    with open(os.path.join(export, "serving_info.json")) as f:
        info = json.load(f)
    assert sorted(info["nan_inputs"]) == ["size", "weight"]
    assert info["inputs"]["colour"]["column"] == "colour"
    assert info["inputs"]["audio"]["sample_rate"] == RATE

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-c", SERVE, export], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    signature = json.loads(lines[0])
    # The raw columns, one named input each, with their raw dtypes. The export
    # serves only the modalities the searched genotype reads (serving.prune);
    # with this seed it reads the table, and the test says so if it stops to.
    raw = {"image": ["uint8", [None, 12, 12, 3]], "audio": ["float32", [None, 2000]],
           "size": ["float32", [None]], "weight": ["float32", [None]],
           "colour": ["string", [None]]}
    assert set(signature) == set(info["inputs"]) and set(signature) <= set(raw)
    assert {"size", "weight", "colour"} <= set(signature), (
        f"the genotype no longer reads the table columns: {signature}")
    assert signature == {n: raw[n] for n in signature}
    assert lines[-1] == "inf refused: True"

    predictions = str(tmp_path / "predictions.csv")
    _cli("predict", "--model", output, "--data", table, "--output", predictions,
         cwd=tmp_path)
    with open(predictions, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [f"row-{i}" for i in range(200)]
    assert {r["predicted"] for r in rows} <= set(CLASSES)
