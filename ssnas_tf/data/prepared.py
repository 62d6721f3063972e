"""Large modalities prepared once into a TFDS dataset and read a batch at a time.

A dataset whose images do not fit in memory (MM-IMDB: 25,959 posters, 3.2 GB
as uint8, 12.8 GB as the published int32) keeps them on disk. `prepare_rows`
converts the source once, chunk by chunk, into a tensorflow-datasets dataset
(`PreparedRows`, one `Tensor` feature "row", in source order) stored as
ArrayRecord shards: TFDS's random-access format, so the index-based pipelines
(`ssnas_tf.data.pipelines`) read exactly the rows of a batch and never hold the
data. It is cached beside the source in `.ssnas_prepared/` (or under
`~/.cache/ssnas_tf` when that folder is not writable), keyed by a fingerprint of
the source file and the conversion. TFDS writes into an `incomplete.*` folder
and renames it when done, so an interrupted preparation is redone, never
half-used; it shows progress bars, and we print a line per few seconds.

Processes share the cache: the one that prepares holds a `FileLock` on
`<folder>.lock` beside it, the others wait for it and then read the finished
copy. The kernel drops the lock of a killed process, so the next one takes it
over, removes the killed one's `incomplete.*` folders and prepares again; a
complete copy that already exists is used as it is.

`RowFile` is the array-like view of it that `MultimodalDataset.inputs` holds
(`tfds.builder_from_directory(...).as_data_source()`): indexing reads only the
rows asked for. The prepared folder is a plain TFDS dataset:
`tfds.builder_from_directory(RowFile.version_dir).as_data_source()["rows"]` reads
it anywhere (TFDS 4.9 reads ArrayRecord as a random-access data source, not
with `as_dataset`).
"""

import hashlib
import json
import os
import shutil
import sys
import threading
import time

import numpy as np

from ssnas_tf.filelock import FileLock

PREPARED_DIR = ".ssnas_prepared"
FORMAT_VERSION = 2  # 1: chunked HDF5
SPLIT = "rows"
_BUILDER_NAME = "prepared_rows"
_DATA_VERSION = "1.0.0"
_DIGEST_FILE = "rows_sha256.txt"
_LOCK = threading.Lock()


def source_fingerprint(path, **conversion):
    """SHA-256 (16 hex digits) of a source file's path, size, mtime and the conversion."""
    stat = os.stat(path)
    key = {"path": os.path.abspath(path), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "version": FORMAT_VERSION, **conversion}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(source, name, fingerprint):
    """The prepared folder of `source`: beside it, else in ~/.cache/ssnas_tf."""
    beside = os.path.join(os.path.dirname(os.path.abspath(source)), PREPARED_DIR)
    try:
        os.makedirs(beside, exist_ok=True)
        if os.access(beside, os.W_OK):
            return os.path.join(beside, f"{name}-{fingerprint}")
    except OSError:
        pass
    home = os.path.join(os.path.expanduser("~"), ".cache", "ssnas_tf")
    os.makedirs(home, exist_ok=True)
    return os.path.join(home, f"{name}-{fingerprint}")


def _version_dir(path):
    return os.path.join(path, _BUILDER_NAME, _DATA_VERSION)


def _builder_class():
    """`PreparedRows`, defined on first use (tensorflow-datasets imports slowly)."""
    import tensorflow_datasets as tfds

    class PreparedRows(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Rows of one array, in source order, from `read_chunk(start, stop)`."""

        VERSION = tfds.core.Version(_DATA_VERSION)

        def __init__(self, *, num_rows, row_shape, dtype, read_chunk, chunk_size,
                     progress, **kwargs):
            self._num_rows, self._row_shape = num_rows, tuple(row_shape)
            self._dtype, self._read_chunk = np.dtype(dtype), read_chunk
            self._chunk_size, self._progress = chunk_size, progress
            self.sha256 = hashlib.sha256()
            super().__init__(**kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, description="ssnas_tf prepared rows",
                # BYTES: the row's raw buffer (the default stores an int64
                # list per value, 30x slower to write and 3x to read).
                features=tfds.features.FeaturesDict({"row": tfds.features.Tensor(
                    shape=self._row_shape, dtype=self._dtype,
                    encoding=tfds.features.Encoding.BYTES)}),
                disable_shuffling=True)  # row i of the source is record i

        def _split_generators(self, dl_manager):
            del dl_manager  # the source is a local file, read by `read_chunk`
            return {SPLIT: self._generate_examples()}

        def _generate_examples(self):
            # Without shuffling TFDS orders the records by key and, past its
            # write buffer, spills them to 1,000 buckets by key range over
            # [0, 2**128): keys 0..N-1 would all land in bucket 0, which is
            # read back whole. Spreading row i's key to i * stride keeps the
            # order and puts N / 1,000 rows in each bucket.
            stride = (2**128 - 1) // max(self._num_rows, 1)
            for start in range(0, self._num_rows, self._chunk_size):
                stop = min(start + self._chunk_size, self._num_rows)
                chunk = np.ascontiguousarray(self._read_chunk(start, stop), self._dtype)
                # The content's digest: a touched or copied source that gives
                # the same rows is the same data (`workflow.fingerprint`).
                self.sha256.update(memoryview(chunk).cast("B"))
                for offset, row in enumerate(chunk):
                    yield (start + offset) * stride, {"row": row}
                self._progress(stop)

    return PreparedRows


def prepare_rows(path, num_rows, row_shape, dtype, read_chunk, chunk_size=256,
                 label="rows", verbose=True):
    """Writes `num_rows` rows from `read_chunk(start, stop)` into the TFDS
    dataset at `path`, once; an existing complete one is reused as it is.

    Args:
        path: the prepared folder (`cache_path(...)`).
        num_rows: rows to write.
        row_shape: shape of one row; `dtype`: its numpy dtype.
        read_chunk: `read_chunk(start, stop) -> array (stop - start, *row_shape)`.
        chunk_size: rows converted at a time. Defaults to 256.
        label: what the progress lines call the rows. Defaults to "rows".
        verbose: print progress to stderr. Defaults to True.

    Returns:
        A `RowFile` over the prepared rows.
    """
    if not _complete(path):
        with FileLock(path.rstrip(os.sep) + ".lock"):
            if not _complete(path):  # another process may have prepared it meanwhile
                _prepare(path, num_rows, row_shape, dtype, read_chunk, chunk_size,
                         label, verbose)
    return RowFile(path)


def _complete(path):
    return os.path.exists(os.path.join(_version_dir(path), _DIGEST_FILE))


def _remove_incomplete(path):
    """Removes the `incomplete.*` folders a killed preparation left (under the lock)."""
    builder_dir = os.path.join(path, _BUILDER_NAME)
    if os.path.isdir(builder_dir):
        for name in os.listdir(builder_dir):
            if name.startswith("incomplete."):
                shutil.rmtree(os.path.join(builder_dir, name), ignore_errors=True)


def _prepare(path, num_rows, row_shape, dtype, read_chunk, chunk_size, label, verbose):
    """Writes the TFDS dataset and its digest; the caller holds the lock."""
    import tensorflow_datasets as tfds
    _remove_incomplete(path)
    start_time = last = time.perf_counter()

    def progress(done):
        nonlocal last
        if verbose and (time.perf_counter() - last > 5 or done == num_rows):
            last = time.perf_counter()
            print(f"[ssnas] preparing {label}: {done}/{num_rows} rows "
                  f"({last - start_time:.0f} s) -> {path}", file=sys.stderr, flush=True)
    if verbose:
        print(f"[ssnas] preparing {label}: {num_rows} rows into a TFDS "
              f"ArrayRecord dataset at {path}", file=sys.stderr, flush=True)
    builder = _builder_class()(
        num_rows=num_rows, row_shape=row_shape, dtype=dtype, read_chunk=read_chunk,
        chunk_size=chunk_size, progress=progress, data_dir=path,
        file_format="array_record")
    # A complete folder without its digest (killed between the two) is
    # written again: TFDS does not regenerate a complete one on its own.
    mode = (tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
            if not os.path.exists(_version_dir(path))
            else tfds.download.GenerateMode.FORCE_REDOWNLOAD)
    with _preparation_settings(verbose):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(download_mode=mode))
    _write_digest(path, builder.sha256.hexdigest())


# TFDS's writer keeps records in memory until they reach its
# shuffle.MAX_MEM_BUFFER_SIZE (1 GB) before it spills them to temporary
# buckets on disk: 1 GB more peak memory for a large dataset. The rows are
# read back bucket by bucket (see the keys in `_generate_examples`), so a
# small buffer costs nothing but bounds the preparation's memory.
_WRITE_BUFFER_BYTES = 64 << 20


class _preparation_settings:
    """TFDS's progress bars on or off, and its write buffer small, for one
    preparation."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        import tensorflow_datasets as tfds
        from tensorflow_datasets.core import shuffle
        tfds.display_progress_bar(self.on)
        self.buffer, shuffle.MAX_MEM_BUFFER_SIZE = (shuffle.MAX_MEM_BUFFER_SIZE,
                                                    _WRITE_BUFFER_BYTES)

    def __exit__(self, *exc):
        import tensorflow_datasets as tfds
        from tensorflow_datasets.core import shuffle
        tfds.display_progress_bar(True)
        shuffle.MAX_MEM_BUFFER_SIZE = self.buffer


def _write_digest(path, digest):
    from ssnas_tf.atomic import atomic_write_text
    atomic_write_text(os.path.join(_version_dir(path), _DIGEST_FILE), digest + "\n")


class RowFile:
    """Read-only array-like over the rows of a prepared TFDS dataset.

    Supports `len`, `shape`, `dtype`, `ndim`, `np.asarray` (reads everything:
    for small data and tests only) and indexing whose first index selects
    rows (an int, a slice or an integer array, in any order).

    Args:
        path: a folder written by `prepare_rows`.
    """

    def __init__(self, path):
        import tensorflow_datasets as tfds
        self.path = path
        self.version_dir = _version_dir(path)
        builder = tfds.builder_from_directory(self.version_dir)
        feature = builder.info.features["row"]
        self._source = builder.as_data_source()[SPLIT]
        self.shape = (len(self._source),) + tuple(feature.shape)
        self.dtype = np.dtype(feature.np_dtype)
        with open(os.path.join(self.version_dir, _DIGEST_FILE)) as f:
            self._sha256 = f.read().strip()

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def _read(self, index):
        if len(index) == 0:
            return np.empty((0,) + self.shape[1:], self.dtype)
        with _LOCK:
            records = self._source.__getitems__([int(i) for i in index])
        return np.stack([r["row"] for r in records])

    def __getitem__(self, key):
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(rows, (int, np.integer)):
            out = self._read(np.arange(len(self))[[rows]])[0]
        else:
            index = np.arange(len(self))[rows]  # slices, masks, negatives; IndexError
            out = self._read(index)
        if not rest:
            return out
        return out[rest] if out.ndim < self.ndim else out[(slice(None),) + rest]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype) if dtype is not None else out

    def digest(self):
        """SHA-256 of the rows, computed when they were prepared (not read again)."""
        return self._sha256

    def __repr__(self):
        return f"RowFile({self.path!r}, shape={self.shape}, dtype={self.dtype})"
