"""Your own data listed in one CSV file: images, audio, text and table columns.

Columns (header row required):

| column   | content                                                        |
|----------|----------------------------------------------------------------|
| `image`  | image path, relative to the CSV file's folder                  |
| `audio`  | WAV file path (PCM, mono or stereo), relative like `image`     |
| `text`   | raw text                                                       |
| `label`  | one class name per row (single-label), or                      |
| `labels` | class names separated by a vertical bar (multi-label)          |
| `split`  | optional: train, valid or test                                 |
| `id`     | optional: the row's id, written into `ssnas predict`'s output  |
| any other| a feature of the `tabular` modality (`ssnas_tf.data.tabular`)  |

Every other column is a table feature: numeric when all its cells are numbers
or empty (an empty cell, `nan` or `NA` is a missing value), else categorical.
`ignore=a,b` leaves columns out, `categorical=c` makes a numeric-looking column
a category. Audio clips are read with the `wave` module as float32 mono in
[-1, 1], cut or zero-padded to `audio_seconds` (default 1.0) at the files'
sample rate, which all files must share (`ssnas_tf.data.audio`).

At least one feature column must be present. A bad row (missing or
undecodable image or WAV file, a WAV file at another sample rate, empty label,
empty text, wrong field count, unknown split) is reported with its line number
in the file (the header is line 1): by default the load fails listing them;
`on_bad_rows="skip"` drops them and prints the list.

Image and audio paths stay inside the CSV's folder (`ssnas_tf.data.confine`): an absolute
path, a `..` that climbs out of the folder, or a symbolic link that resolves
outside it is a bad row, so a CSV handed over by someone else cannot make the
loader read other files on the machine. The option `image_root=DIR` (CLI:
`--dataset-option image_root=DIR`) confines the paths to DIR instead, where
absolute paths inside DIR are allowed too; relative paths are still relative
to the CSV's folder. An image whose header declares more than `max_pixels`
pixels (default 2**26 = 67,108,864) is a bad row too, refused before decoding.
"""

import csv
import os
import pathlib
import sys
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ssnas_tf.data import audio as audio_lib
from ssnas_tf.data import tabular as tabular_lib
from ssnas_tf.data.base import DataError, MultimodalDataset, SPLIT_NAMES
from ssnas_tf.data.confine import (DEFAULT_MAX_PIXELS, PathError, PixelBudgetError,
                                   check_pixels, confined_path)

_SHOWN_ROWS = 20  # bad rows listed in a message; the rest are counted


def _format_bad_rows(bad: List[Tuple[int, str]]) -> str:
    lines = [f"  line {number}: {reason}" for number, reason in bad[:_SHOWN_ROWS]]
    if len(bad) > _SHOWN_ROWS:
        lines.append(f"  ... and {len(bad) - _SHOWN_ROWS} more")
    return "\n".join(lines)


def _read_image(path: pathlib.Path, size: Tuple[int, int],
                max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes one image to uint8 RGB (height, width, 3); raises on bad files.

    Raises:
        PixelBudgetError: the header declares more than `max_pixels` pixels
            (checked before any pixel is decoded).
    """
    height, width = size
    with Image.open(path) as image:  # reads the header only
        check_pixels(image.size, max_pixels, f"image {path}")
        image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels have arbitrary colours: put them on white.
            rgba = image.convert("RGBA")
            image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image.alpha_composite(rgba)
        image = image.convert("RGB").resize((width, height),
                                            Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def preprocessing_steps(image_size) -> Dict[str, List[str]]:
    """What a client must repeat on an image file (extras["preprocessing"])."""
    height, width = image_size
    return {"image": [
        "JPEGs decoded with PIL draft('RGB', (width, height)) (reduced-scale "
        "decoding); images with an alpha channel or a transparency key (RGBA, "
        "LA, PA, 'transparency' info) converted to RGBA and alpha-composited "
        "over opaque white",
        f"converted to RGB and resized to {width}x{height} with PIL bilinear; "
        f"uint8 ({height}, {width}, 3)"]}


def _check_size(image_size) -> Tuple[int, int]:
    try:
        height, width = (int(d) for d in image_size)
    except (TypeError, ValueError):
        height = width = 0
    if height <= 0 or width <= 0:
        raise DataError(f"csv: image_size must be (height, width) positive "
                        f"integers, got {image_size!r}")
    return height, width


def _read_header(reader, path, options) -> Dict[str, int]:
    """Column name -> position, after checking the required columns; sets
    `options["table"]`, the table feature columns in file order."""
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise DataError(f"csv: {path} is empty; expected a header row")
    column = {name: i for i, name in enumerate(header)}
    if len(column) != len(header):
        raise DataError(f"csv: {path} has duplicate column names: {header}")
    if ("label" in column) == ("labels" in column):
        raise DataError(f"csv: {path} needs exactly one of the columns 'label' "
                        f"(single-label) and 'labels' (multi-label, "
                        f"'|'-separated); header is {header}")
    unknown = sorted(set(options["ignore"] + options["categorical"]) - set(header))
    if unknown:
        raise DataError(f"csv: ignore/categorical name the columns {unknown}, which "
                        f"{path} lacks; header is {header}")
    options["table"] = [name for name in header
                        if name not in tabular_lib.RESERVED_COLUMNS
                        and name not in options["ignore"]]
    if not options["table"] and not any(c in column for c in ("image", "audio", "text")):
        raise DataError(f"csv: {path} needs an 'image', 'audio' or 'text' column or "
                        f"table feature columns; header is {header}")
    return column


def _read_rows(reader, column, path, options):
    """Parses the data rows into dicts; returns `(rows, [(line, reason), ...])`."""
    allow_empty_text = options["allow_empty_text"]
    multilabel = "labels" in column
    label_column = column["labels" if multilabel else "label"]
    rows, bad = [], []
    previous_end = reader.line_num
    for fields in reader:
        # Quoted fields may span lines: report the line the record starts on.
        number, previous_end = previous_end + 1, reader.line_num
        if not fields:
            continue  # blank line
        if len(fields) != len(column):
            bad.append((number, f"{len(fields)} fields, the header has "
                                f"{len(column)}"))
            continue
        row, reasons = {"line": number}, []
        raw = fields[label_column].strip()
        row["labels"] = ([n.strip() for n in raw.split("|") if n.strip()]
                         if multilabel else [raw] if raw else [])
        if not row["labels"]:
            reasons.append("empty label")
        if "split" in column:
            row["split"] = fields[column["split"]].strip().lower()
            if row["split"] not in SPLIT_NAMES:
                reasons.append(f"split '{fields[column['split']]}' is not one "
                               f"of {', '.join(SPLIT_NAMES)}")
        if "text" in column:
            row["text"] = fields[column["text"]]
            if not allow_empty_text and not row["text"].strip():
                reasons.append("empty text")
        for kind in ("image", "audio"):
            if kind in column:
                _read_row_file(kind, fields[column[kind]], path, options, number,
                               row, reasons)
        row["cells"] = [fields[column[name]] for name in options["table"]]
        if reasons:
            bad.append((number, "; ".join(reasons)))
        else:
            rows.append(row)
    return rows, bad


def _read_row_file(kind, name, path, options, number, row, reasons):
    """Reads the row's `kind` ("image", "audio") file into `row[kind]`, or
    appends to `reasons` why the row is bad."""
    name = name.strip()
    reason, value = (_row_image(name, path, options) if kind == "image"
                     else _row_audio(name, path, options, number))
    if reason:
        reasons.append(reason)
    else:
        row[kind] = value


def _row_file(kind, name, path, options):
    """(None, file path) or (reason, None) for the `kind` ("image", "audio")
    path `name` of a row: confined to the CSV's folder or `image_root`."""
    if not name:
        return f"empty {kind} path", None
    try:
        found = pathlib.Path(confined_path(name, path.parent, options["image_root"],
                                            option="image_root"))
    except PathError as error:
        return f"{kind} {error}", None
    if not found.is_file():
        return f"{kind} file {path.parent / name} not found", None
    return None, found


def _row_image(name, path, options):
    """(None, image) or (reason, None) for the image path `name` of a row."""
    reason, image_path = _row_file("image", name, path, options)
    if reason:
        return reason, None
    try:
        return None, _read_image(image_path, options["image_size"],
                                 options["max_pixels"])
    except PixelBudgetError as error:
        return str(error), None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"cannot decode image {image_path}: {error}", None


def _row_audio(name, path, options, number):
    """(None, waveform) or (reason, None) for the WAV path `name` of a row.

    The first file read fixes the sample rate (`options["sample_rate"]`, and
    `options["rate_source"]` says where it comes from) unless it is preset;
    a file at another rate is a bad row. `options["audio_length"]`, when set,
    is the number of samples kept, else `audio_seconds` at the file's rate."""
    reason, wav_path = _row_file("audio", name, path, options)
    if reason:
        return reason, None
    try:
        waveform, rate = audio_lib.read_wav(wav_path)
    except (audio_lib.AudioError, OSError) as error:
        return str(error), None
    if options.get("sample_rate") is None:
        options["sample_rate"] = rate
        options["rate_source"] = f"line {number}'s file has"
    elif rate != options["sample_rate"]:
        return (f"audio file {wav_path} has sample rate {rate} Hz, but "
                f"{options['rate_source']} {options['sample_rate']} Hz; all audio "
                f"files need one sample rate"), None
    length = options.get("audio_length") or audio_lib.num_samples(
        options["audio_seconds"], rate)
    return None, audio_lib.fit_length(waveform, length)


def load_csv(data_dir=None, **options) -> MultimodalDataset:
    """Loads image and/or text samples listed in a CSV file.

    Args:
        data_dir: path to the CSV file (not its folder). Required.
        **options:
            `image_size`: (height, width) every image is resized to.
                Defaults to (64, 64).
            `on_bad_rows`: "fail" raises one DataError listing the bad rows;
                "skip" drops them and prints the list to stderr. Defaults to
                "fail".
            `allow_empty_text`: keep rows whose text is empty. Defaults to False.
            `image_root`: the folder image paths must stay inside; absolute
                paths inside it are allowed. Defaults to None: the CSV's
                folder, and absolute paths are bad rows.
            `max_pixels`: images whose header declares more pixels are bad
                rows (not decoded). Defaults to 2**26 (67,108,864).
            `audio_seconds`: clip length kept (cut or zero-padded) at the
                files' sample rate. Defaults to 1.0.
            `ignore`: columns left out ("a,b" or a list). Defaults to none.
            `categorical`: numeric-looking columns read as categories.
                Defaults to none.

    Returns:
        A `MultimodalDataset` named after the file stem, with modalities "image"
        (uint8 (N, H, W, 3)), "text" (object (N,) of str), "audio" (float32
        (N, samples) waveforms, kind `audio`) and "tabular" (float32 (N, C),
        kind `tabular`, see `ssnas_tf.data.tabular`), in that order, each when
        its columns are present. `extras` then holds "audio_sample_rate",
        "tabular_columns" and "tabular_strings".
        Label names are sorted; multi-label data (a `labels` column) gives int32
        multi-hot labels. `splits` comes from the `split` column, and is empty
        without one. `extras["skipped_rows"]` lists the dropped
        `(line, reason)` pairs; `extras["preprocessing"]` states the image
        decoding a client must repeat (see `ssnas_tf.serving.preprocessing`).

    Raises:
        DataError: missing file, bad header, bad option, bad rows in "fail"
            mode (image paths leaving the CSV's folder or `image_root`
            included), or no usable row.

    Example:
        >>> data = load_csv("my_data/items.csv", image_size=(32, 32))
        >>> data.inputs["image"].shape[1:]
        (32, 32, 3)
    """
    options = _check_options(options)
    image_size, on_bad_rows = options["image_size"], options["on_bad_rows"]
    path = _csv_path(data_dir)
    column, rows, bad = _read_file(path, options)
    _report_bad_rows(path, bad, on_bad_rows)
    if not rows:
        raise DataError(f"csv: {path} has no usable data rows")
    multilabel = "labels" in column
    label_names, labels = _labels(rows, multilabel)
    inputs, kinds = {}, {}
    if "image" in column:
        inputs["image"] = np.stack([row["image"] for row in rows])
        kinds["image"] = "image"
    if "text" in column:
        inputs["text"] = np.array([row["text"] for row in rows], dtype=object)
        kinds["text"] = "text"
    extras = {"skipped_rows": bad, "preprocessing": {}}
    if "image" in column:
        extras["preprocessing"].update(preprocessing_steps(image_size))
    if "audio" in column:
        inputs["audio"] = np.stack([row["audio"] for row in rows])
        kinds["audio"] = "audio"
        extras[audio_lib.SAMPLE_RATE_KEY] = options["sample_rate"]
        extras["preprocessing"].update(audio_lib.preprocessing_steps(
            options["audio_seconds"], options["sample_rate"]))
    if options["table"]:
        cells = {name: [row["cells"][i] for row in rows]
                 for i, name in enumerate(options["table"])}
        array, entries, strings = tabular_lib.build_table(
            cells, options["categorical"], taken=list(inputs))
        inputs[tabular_lib.TABULAR], kinds[tabular_lib.TABULAR] = array, "tabular"
        extras[tabular_lib.COLUMNS_KEY] = entries
        extras[tabular_lib.STRINGS_KEY] = strings
    if not extras["preprocessing"]:
        del extras["preprocessing"]
    return MultimodalDataset(
        name=path.stem, inputs=inputs, kinds=kinds, labels=labels,
        label_names=label_names, multilabel=multilabel,
        splits=_splits(rows) if "split" in column else {}, extras=extras)


def _check_options(options):
    """`load_csv`'s options, checked, as a dict with every default filled in."""
    checked = {"image_size": _check_size(options.pop("image_size", (64, 64))),
               "on_bad_rows": options.pop("on_bad_rows", "fail"),
               "allow_empty_text": options.pop("allow_empty_text", False),
               "image_root": options.pop("image_root", None),
               "max_pixels": options.pop("max_pixels", DEFAULT_MAX_PIXELS),
               "audio_seconds": options.pop("audio_seconds", audio_lib.DEFAULT_SECONDS)}
    checked["ignore"], checked["categorical"] = tabular_lib.check_column_options(
        options.pop("ignore", None), options.pop("categorical", None))
    if options:
        raise DataError(f"csv: unknown option(s) {sorted(options)}; options are "
                        f"{', '.join(checked)}")
    if checked["on_bad_rows"] not in ("fail", "skip"):
        raise DataError(f"csv: on_bad_rows must be 'fail' or 'skip', got "
                        f"{checked['on_bad_rows']!r}")
    root = checked["image_root"]
    if root is not None:
        if not isinstance(root, (str, pathlib.PurePath)) or not os.path.isdir(root):
            raise DataError(f"csv: image_root must be an existing folder, got {root!r}")
    seconds = checked["audio_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise DataError(f"csv: audio_seconds must be a positive number, got {seconds!r}")
    max_pixels = checked["max_pixels"]
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise DataError(f"csv: max_pixels must be a positive integer, got {max_pixels!r}")
    return checked


def _csv_path(data_dir) -> pathlib.Path:
    if data_dir is None:
        raise DataError("csv: data_dir is required: the path to a CSV file with "
                        "columns image, audio, text and/or table features, label "
                        "or labels, and optionally split and id")
    path = pathlib.Path(data_dir)
    if path.is_dir():
        raise DataError(f"csv: {path} is a directory; pass the path of the CSV "
                        "file itself")
    if not path.is_file():
        raise DataError(f"csv: file {path} not found")
    return path


def _read_file(path, options):
    """(column index, good rows, bad (line, reason) pairs) of the CSV file."""
    # utf-8-sig: spreadsheet exports often start with a byte order mark.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            column = _read_header(reader, path, options)
            rows, bad = _read_rows(reader, column, path, options)
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"csv: {path}, line {reader.line_num}: cannot parse: "
                            f"{error}") from None
    return column, rows, bad


def _report_bad_rows(path, bad, on_bad_rows):
    if bad and on_bad_rows == "fail":
        raise DataError(f"csv: {len(bad)} bad rows in {path} (pass "
                        f"on_bad_rows='skip' to drop them):\n"
                        f"{_format_bad_rows(bad)}")
    if bad:
        print(f"skipped {len(bad)} bad rows of {path}:\n{_format_bad_rows(bad)}",
              file=sys.stderr)


def _labels(rows, multilabel):
    """Sorted label names and the labels: int64 (N,) or multi-hot int32 (N, K)."""
    label_names = sorted({name for row in rows for name in row["labels"]})
    index = {name: i for i, name in enumerate(label_names)}
    if multilabel:
        labels = np.zeros((len(rows), len(label_names)), dtype=np.int32)
        for i, row in enumerate(rows):
            labels[i, [index[name] for name in row["labels"]]] = 1
    else:
        labels = np.array([index[row["labels"][0]] for row in rows], dtype=np.int64)
    return label_names, labels


def _splits(rows):
    names = np.array([row["split"] for row in rows])
    return {name: np.flatnonzero(names == name).astype(np.int64)
            for name in SPLIT_NAMES if np.any(names == name)}
