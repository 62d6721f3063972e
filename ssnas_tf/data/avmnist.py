"""AV-MNIST (MFAS, MultiBench): MNIST digits paired with spoken-digit spectrograms.

Published npy layout under one root folder:

    <root>/image/ (MultiBench) or <root>/images/ (MFAS)
        train_data.npy (60000, 784), test_data.npy (10000, 784), values 0-255
    <root>/audio/
        train_data.npy (60000, 112, 112), test_data.npy (10000, 112, 112), 0-255
    <root>/train_labels.npy (60000,), <root>/test_labels.npy (10000,)

Rows are returned train first, then test. The common split keeps the last 5,000
train rows for validation.

Reference: J.-M. Perez-Rua et al., "MFAS: Multimodal Fusion Architecture
Search", CVPR 2019; P. P. Liang et al., "MultiBench", NeurIPS 2021.
"""

import pathlib

import numpy as np

from ssnas_tf.data.base import DataError, MultimodalDataset

IMAGE_SIDE = 28
AUDIO_SIDE = 112
NUM_CLASSES = 10
# What a client must repeat on raw rows (extras["preprocessing"]).
PREPROCESSING = {
    "image": [f"the {IMAGE_SIDE * IMAGE_SIDE} MNIST grey values (0-255) reshaped "
              f"row-major to {IMAGE_SIDE} x {IMAGE_SIDE} x 1, rounded to the "
              f"nearest integer and clipped to 0-255 as uint8"],
    "audio": [f"the {AUDIO_SIDE} x {AUDIO_SIDE} spectrogram on the published 0-255 "
              f"scale with a trailing channel axis ({AUDIO_SIDE}, {AUDIO_SIDE}, 1), "
              f"rounded to the nearest integer and clipped to 0-255 as uint8"],
}
_CHUNK_ROWS = 2048  # rows converted at a time, so float sources never get copied whole


def _load(path: pathlib.Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"avmnist: missing file {path}")
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise DataError(f"avmnist: cannot read {path}: {error}") from None


def _check_shape(array, path, row_shape, rows=None):
    if (array.ndim != 1 + len(row_shape) or array.shape[1:] != tuple(row_shape)
            or (rows is not None and len(array) != rows)):
        expected = ", ".join(str(d) for d in (rows if rows is not None else "N",
                                              *row_shape))
        expected += "," if not row_shape else ""
        raise DataError(f"avmnist: {path} has shape {array.shape}; "
                        f"expected ({expected})")


def _check_values(source, path):
    """0-255 values, and not a float array scaled to [0, 1]; read chunk by chunk."""
    floating = np.issubdtype(source.dtype, np.floating)
    peak = 0.0
    for begin in range(0, len(source), _CHUNK_ROWS):
        chunk = np.asarray(source[begin:begin + _CHUNK_ROWS])
        if chunk.size:
            low, high = chunk.min(), chunk.max()
            if low < -0.5 or high > 255.5 or np.isnan(high):
                raise DataError(f"avmnist: {path} holds values outside 0-255 "
                                f"(min {low}, max {high})")
            peak = max(peak, float(high))
    # Data scaled to [0, 1] would otherwise turn silently into black images.
    if floating and 0 < peak <= 1:
        raise DataError(f"avmnist: {path} looks scaled to [0, 1] (max {peak}); "
                        "expected the published 0-255 scale")


def _rows(sources, row_shape, start, stop):
    """Rows [start, stop) of the sources laid end to end, as uint8 (n, *row_shape, 1)."""
    parts, offset = [], 0
    for source in sources:
        lo, hi = max(start - offset, 0), min(stop - offset, len(source))
        if lo < hi:
            chunk = np.asarray(source[lo:hi])
            if np.issubdtype(chunk.dtype, np.floating):
                chunk = np.clip(np.rint(chunk), 0, 255)
            parts.append(chunk.astype(np.uint8).reshape(hi - lo, *row_shape, 1))
        offset += len(source)
    return np.concatenate(parts)


def _to_uint8(sources, row_shape, paths):
    """Copies 0-255 arrays (any numeric dtype) into one uint8 array, chunk by chunk."""
    for source, path in zip(sources, paths):
        _check_values(source, path)
    total = sum(len(s) for s in sources)
    out = np.empty((total, *row_shape, 1), dtype=np.uint8)
    for begin in range(0, total, _CHUNK_ROWS):
        stop = min(begin + _CHUNK_ROWS, total)
        out[begin:stop] = _rows(sources, row_shape, begin, stop)
    return out


def _prepared(name, sources, row_shape, paths, verbose):
    """The rows as a prepared TFDS dataset beside the files (`data.prepared`),
    checked and converted once, chunk by chunk; a `RowFile`."""
    from ssnas_tf.data import prepared
    files = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}
    fingerprint = prepared.source_fingerprint(paths[0], files=files, key=name,
                                              shape=list(row_shape))
    checked = []

    def read_chunk(start, stop):
        if not checked:  # only when preparing: a prepared dataset is not re-read
            for source, path in zip(sources, paths):
                _check_values(source, path)
            checked.append(True)
        return _rows(sources, row_shape, start, stop)
    return prepared.prepare_rows(
        prepared.cache_path(paths[0], f"avmnist-{name}", fingerprint),
        sum(len(s) for s in sources), (*row_shape, 1), np.uint8, read_chunk,
        chunk_size=_CHUNK_ROWS, label=f"avmnist {name} of {paths[0].parent}",
        verbose=verbose)


def _labels(path, rows):
    labels = _load(path)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    _check_shape(labels, path, (), rows)
    labels = np.asarray(labels)
    if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0
                        or labels.max() >= NUM_CLASSES):
        raise DataError(f"avmnist: {path} holds labels outside the digits 0-9")
    return labels.astype(np.int64)


def load_avmnist(data_dir=None, **options) -> MultimodalDataset:
    """Loads AV-MNIST from its published npy files.

    Args:
        data_dir: the root folder described in the module doc. Required.
        **options: `valid_size`, the number of final train rows kept for
            validation. Defaults to 5000 (the common split 55,000 / 5,000 /
            10,000). 0 gives no "valid" split. `stream` (default True): the
            images and spectrograms are prepared once into TFDS datasets
            beside the files (`ssnas_tf.data.prepared`) and read a batch at a
            time (`RowFile`s); False converts them into memory. `verbose`
            (default True): progress lines while preparing.

    Returns:
        A `MultimodalDataset` named "avmnist" with modalities "image" (uint8
        (N, 28, 28, 1)) and "audio" (spectrogram, uint8 (N, 112, 112, 1); both
        `RowFile`s when streamed), labels
        0-9 and splits "train", "valid", "test".

    Raises:
        DataError: missing folder or file, wrong shape or values, bad option;
            the message names the path and the expected shape.

    Example:
        >>> data = load_avmnist("/data/avmnist")
        >>> {k: len(v) for k, v in data.splits.items()}
        {'train': 55000, 'valid': 5000, 'test': 10000}
    """
    valid_size = options.pop("valid_size", 5000)
    stream, verbose = options.pop("stream", True), options.pop("verbose", True)
    if options:
        raise DataError(f"avmnist: unknown option(s) {sorted(options)}; "
                        "the options are valid_size, stream and verbose")
    image_dir, audio_dir, root = _folders(data_dir)
    image_paths = [image_dir / f"{part}_data.npy" for part in ("train", "test")]
    audio_paths = [audio_dir / f"{part}_data.npy" for part in ("train", "test")]
    images, audios, labels = [], [], []
    for part, image_path, audio_path in zip(("train", "test"), image_paths,
                                            audio_paths):
        images.append(_load(image_path))
        _check_shape(images[-1], image_path, (IMAGE_SIDE * IMAGE_SIDE,))
        audios.append(_load(audio_path))
        _check_shape(audios[-1], audio_path, (AUDIO_SIDE, AUDIO_SIDE),
                     len(images[-1]))
        labels.append(_labels(root / f"{part}_labels.npy", len(images[-1])))
    splits = _splits(len(images[0]), len(images[1]), valid_size)

    def convert(name, sources, row_shape, paths):
        if stream:
            return _prepared(name, sources, row_shape, paths, verbose)
        return _to_uint8(sources, row_shape, paths)
    return MultimodalDataset(
        name="avmnist",
        inputs={
            "image": convert("image", images, (IMAGE_SIDE, IMAGE_SIDE), image_paths),
            "audio": convert("audio", audios, (AUDIO_SIDE, AUDIO_SIDE), audio_paths),
        },
        kinds={"image": "image", "audio": "spectrogram"},
        labels=np.concatenate(labels),
        label_names=tuple(str(i) for i in range(NUM_CLASSES)),
        splits=splits,
        extras={"preprocessing": {k: list(v) for k, v in PREPROCESSING.items()}},
    )


def _folders(data_dir):
    """(image folder, audio folder, root) of the published layout."""
    if data_dir is None:
        raise DataError("avmnist: data_dir is required: the folder holding image/ "
                        "(or images/), audio/, train_labels.npy and test_labels.npy")
    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise DataError(f"avmnist: data_dir {root} is not a directory")
    # MultiBench names the folder image/, MFAS images/; image/ wins if both exist.
    image_dir = next((root / name for name in ("image", "images")
                      if (root / name).is_dir()), None)
    if image_dir is None:
        raise DataError(f"avmnist: {root} has neither image/ (MultiBench) nor "
                        "images/ (MFAS)")
    audio_dir = root / "audio"
    if not audio_dir.is_dir():
        raise DataError(f"avmnist: {root} has no audio/ folder")
    return image_dir, audio_dir, root


def _splits(n_train, n_test, valid_size):
    """Train rows first, the last `valid_size` of them for validation, then test."""
    if not isinstance(valid_size, (int, np.integer)) or not 0 <= valid_size < n_train:
        raise DataError(f"avmnist: valid_size={valid_size!r} must be an integer in "
                        f"[0, {n_train}): the train files hold {n_train} rows")
    splits = {"train": np.arange(n_train - valid_size, dtype=np.int64)}
    if valid_size:
        splits["valid"] = np.arange(n_train - valid_size, n_train, dtype=np.int64)
    if n_test:
        splits["test"] = np.arange(n_train, n_train + n_test, dtype=np.int64)
    return splits
