"""Build an AV-MNIST-layout folder from real sources installable offline.

Images: the UCI optical handwritten digits that scikit-learn ships
(`sklearn.datasets.load_digits`: 1,797 digits by 43 writers, 8 x 8, values
0-16), scaled to MNIST's 20 x 20 box inside 28 x 28 and to 0-255.

Audio: each digit's English name spoken by espeak-ng (Debian package
`espeak-ng`) with a per-sample voice, accent, speed and pitch, mixed with noise
at a per-sample signal-to-noise ratio (AV-MNIST mixes in ESC-50 noise for the
same reason: the spoken digit alone would be too easy), as a 112 x 112
log-magnitude spectrogram on a 0-255 scale.

Written in the MFAS/MultiBench layout that `ssnas_tf.data.avmnist` reads:
image/{train,test}_data.npy, audio/{train,test}_data.npy,
{train,test}_labels.npy.

    python scripts/build_avmnist_like.py OUT_DIR [--per-class 150] [--test-share 0.2]

The audio is synthesised speech, not human recordings (no spoken-digit
recordings are installable offline here); the images are real handwriting.
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import wave

import numpy as np
from scipy import signal

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven",
         "eight", "nine"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
            "f5", "croak", "klatt", "klatt2", "klatt3", "whisper", "Andy",
            "Annie", "belinda", "john", "linda", "max", "paul"]
SAMPLE_RATE = 8000
SIDE = 112


def images(per_class, rng):
    from sklearn.datasets import load_digits
    digits = load_digits()
    rows, labels = [], []
    for label in range(10):
        index = np.flatnonzero(digits.target == label)
        chosen = rng.choice(index, size=per_class, replace=len(index) < per_class)
        rows.append(digits.images[chosen])
        labels.append(np.full(per_class, label))
    small = np.concatenate(rows).astype(np.float32) / 16.0
    # 8 x 8 -> 20 x 20 (bilinear), centred in 28 x 28 as MNIST centres its box.
    import tensorflow as tf
    big = tf.image.resize(small[..., None], (20, 20), method="bilinear").numpy()
    padded = np.pad(big[..., 0], ((0, 0), (4, 4), (4, 4)))
    return (np.clip(padded, 0, 1) * 255).round().astype(np.uint8), np.concatenate(labels)


def speak(word, voice, speed, pitch, folder):
    path = pathlib.Path(folder) / "w.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                    "-w", str(path), word], check=True, capture_output=True)
    with wave.open(str(path)) as handle:
        rate = handle.getframerate()
        audio = np.frombuffer(handle.readframes(handle.getnframes()), np.int16)
    audio = audio.astype(np.float32) / 32768.0
    return signal.resample_poly(audio, SAMPLE_RATE, rate)


def spectrogram(audio, rng, snr_db):
    length = SAMPLE_RATE  # one second, the spoken word at a random offset
    clip = np.zeros(length, np.float32)
    audio = audio[:length]
    start = rng.integers(0, length - len(audio) + 1)
    clip[start:start + len(audio)] = audio
    power = np.mean(audio ** 2) + 1e-12
    noise = rng.standard_normal(length).astype(np.float32)
    # Brown-ish noise: low frequencies, where speech lives, get the most.
    noise = np.cumsum(noise)
    noise -= np.convolve(noise, np.ones(200) / 200, mode="same")
    noise *= np.sqrt(power / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr_db / 10))
    _, _, z = signal.stft(clip + noise, fs=SAMPLE_RATE, nperseg=222,
                          noverlap=222 - length // SIDE)
    magnitude = np.log1p(np.abs(z[:SIDE, :SIDE]) * 100)
    magnitude = np.pad(magnitude, ((0, SIDE - magnitude.shape[0]),
                                   (0, SIDE - magnitude.shape[1])))
    return np.clip(magnitude / magnitude.max() * 255, 0, 255).round().astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--snr-db", type=float, nargs=2, default=(-12.0, 0.0),
                        help="range of the per-sample signal-to-noise ratio")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    image, labels = images(args.per_class, rng)
    audio = np.empty((len(labels), SIDE, SIDE), np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        for i, label in enumerate(labels):
            voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
            wav = speak(WORDS[label], voice, int(rng.integers(110, 230)),
                        int(rng.integers(15, 90)), folder)
            audio[i] = spectrogram(wav, rng, rng.uniform(*args.snr_db))
            if (i + 1) % 250 == 0:
                print(f"{i + 1}/{len(labels)} spoken", file=sys.stderr)
    order = rng.permutation(len(labels))
    test = int(round(len(order) * args.test_share))
    parts = {"train": order[test:], "test": order[:test]}
    (args.out / "image").mkdir(parents=True, exist_ok=True)
    (args.out / "audio").mkdir(exist_ok=True)
    for name, index in parts.items():
        np.save(args.out / "image" / f"{name}_data.npy",
                image[index].reshape(len(index), -1))
        np.save(args.out / "audio" / f"{name}_data.npy", audio[index])
        np.save(args.out / f"{name}_labels.npy", labels[index])
    print(f"wrote {args.out}: train {len(parts['train'])}, test {len(parts['test'])}")


if __name__ == "__main__":
    main()
