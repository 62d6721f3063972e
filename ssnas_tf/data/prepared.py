"""Large modalities prepared once into an on-disk file and read a batch at a time.

A dataset whose images do not fit in memory (MM-IMDB: 25,959 posters, 3.2 GB
as uint8, 12.8 GB as the published int32) keeps them on disk. `prepare_rows`
converts the source once, chunk by chunk with progress output, into a chunked
HDF5 file of model-ready rows (uint8 RGB), cached beside the source in
`.ssnas_prepared/` (or under `~/.cache/ssnas_tf` when that folder is not
writable) and keyed by a fingerprint of the source file and the conversion.
`RowFile` is the array-like view of it that `MultimodalDataset.inputs` holds:
indexing reads only the rows asked for, so the tf.data pipelines
(`ssnas_tf.data.pipelines`) hold a few batches, never the data.
"""

import hashlib
import json
import os
import sys
import threading
import time

import numpy as np

PREPARED_DIR = ".ssnas_prepared"
FORMAT_VERSION = 1
_LOCK = threading.Lock()  # h5py is not thread-safe across handles


def source_fingerprint(path, **conversion):
    """SHA-256 (16 hex digits) of a source file's path, size, mtime and the conversion."""
    stat = os.stat(path)
    key = {"path": os.path.abspath(path), "size": stat.st_size,
           "mtime_ns": stat.st_mtime_ns, "version": FORMAT_VERSION, **conversion}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(source, name, fingerprint):
    """Where the prepared file of `source` lives: beside it, else in ~/.cache/ssnas_tf."""
    beside = os.path.join(os.path.dirname(os.path.abspath(source)), PREPARED_DIR)
    try:
        os.makedirs(beside, exist_ok=True)
        if os.access(beside, os.W_OK):
            return os.path.join(beside, f"{name}-{fingerprint}.h5")
    except OSError:
        pass
    home = os.path.join(os.path.expanduser("~"), ".cache", "ssnas_tf")
    os.makedirs(home, exist_ok=True)
    return os.path.join(home, f"{name}-{fingerprint}.h5")


def prepare_rows(path, num_rows, row_shape, dtype, read_chunk, chunk_size=256,
                 label="rows", verbose=True):
    """Writes `num_rows` rows from `read_chunk(start, stop)` into `path` (HDF5), once.

    Written to a temporary file and renamed, so an interrupted preparation is
    redone, never half-used. An existing `path` is reused as it is.

    Args:
        path: the prepared file (`cache_path(...)`).
        num_rows: rows to write.
        row_shape: shape of one row; `dtype`: its numpy dtype.
        read_chunk: `read_chunk(start, stop) -> array (stop - start, *row_shape)`.
        chunk_size: rows converted at a time. Defaults to 256.
        label: what the progress lines call the rows. Defaults to "rows".
        verbose: print progress to stderr. Defaults to True.

    Returns:
        A `RowFile` over the prepared rows.
    """
    import h5py
    if not os.path.exists(path):
        tmp = f"{path}.tmp-{os.getpid()}"
        start_time = last = time.perf_counter()
        try:
            with h5py.File(tmp, "w") as f:
                rows = f.create_dataset("rows", (num_rows,) + tuple(row_shape), dtype=dtype,
                                        chunks=(1,) + tuple(row_shape))
                digest = hashlib.sha256()
                for start in range(0, num_rows, chunk_size):
                    stop = min(start + chunk_size, num_rows)
                    chunk = np.ascontiguousarray(read_chunk(start, stop), dtype=dtype)
                    rows[start:stop] = chunk
                    digest.update(memoryview(chunk).cast("B"))
                    if verbose and (time.perf_counter() - last > 5 or stop == num_rows):
                        last = time.perf_counter()
                        print(f"[ssnas] preparing {label}: {stop}/{num_rows} rows "
                              f"({last - start_time:.0f} s) -> {path}",
                              file=sys.stderr, flush=True)
                # The content's digest: a touched or copied source that gives
                # the same rows is the same data (`workflow.fingerprint`).
                rows.attrs["sha256"] = digest.hexdigest()
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return RowFile(path)


class RowFile:
    """Read-only array-like over the rows of a prepared file.

    Supports `len`, `shape`, `dtype`, `ndim`, `np.asarray` (reads everything:
    for small data and tests only) and indexing whose first index selects
    rows (an int, a slice or an integer array, in any order).

    Args:
        path: a file written by `prepare_rows`.
    """

    def __init__(self, path):
        import h5py
        self.path = path
        with h5py.File(path, "r") as f:
            self.shape = tuple(f["rows"].shape)
            self.dtype = f["rows"].dtype
            self._sha256 = str(f["rows"].attrs.get("sha256", ""))
        self._handles = threading.local()

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return self.shape[0]

    def _rows(self):
        import h5py
        handle = getattr(self._handles, "file", None)
        if handle is None:
            handle = self._handles.file = h5py.File(self.path, "r")
        return handle["rows"]

    def __getitem__(self, key):
        rows, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(rows, (slice, int, np.integer)):
            with _LOCK:
                out = self._rows()[rows]
        else:
            index = np.asarray(rows)
            if index.dtype == bool:
                index = np.flatnonzero(index)
            index = np.where(index < 0, index + len(self), index).astype(np.int64)
            # HDF5 point selections must be increasing and unique.
            unique, inverse = np.unique(index, return_inverse=True)
            out = np.empty((len(unique),) + self.shape[1:], self.dtype)
            with _LOCK:
                rows_ds = self._rows()
                for i, row in enumerate(unique):
                    out[i] = rows_ds[row]
            out = out[inverse]
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
