"""`ssnas predict` on a CSV file: the rows read as the export's raw inputs.

The CSV loader's rules apply (`ssnas_tf.data.csv_files`): image and WAV paths
confined to the CSV's folder (or `image_root`), images read at the model's
size, WAV files cut or padded to the model's clip length and refused at
another sample rate, bad rows listed with their line numbers. Table columns
are read by their names in `serving_info.json` (`"column"`): numeric cells
as float32 (empty = NaN, a missing value), categorical cells as text.
"""

import csv
import sys

import numpy as np

from ssnas_tf.data.base import DataError


def read_csv(path, info, on_bad_rows, options):
    """(ids, inputs, labels or None, bad `(line, reason)` pairs) of a CSV file
    of new samples, for the export described by `info` (serving_info.json)."""
    from ssnas_tf.data.csv_files import _format_bad_rows
    served = info["inputs"]
    wanted = {name: spec.get("column", name) for name, spec in served.items()}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader, [])]
            if not header:
                raise DataError(f"--data {path} is empty; expected a header row "
                                f"with the columns {sorted(wanted.values())}")
            column = {name: i for i, name in enumerate(header)}
            missing = sorted(set(wanted.values()) - set(column))
            if missing:
                raise DataError(
                    f"--data {path}: the model reads the column(s) "
                    f"{sorted(wanted.values())}; the columns {missing} are missing "
                    f"(header: {header})")
            rows, bad = _csv_rows(reader, column, path, info, options)
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"--data {path}, line {reader.line_num}: cannot parse: "
                            f"{error}") from None
    if bad and on_bad_rows == "fail":
        raise DataError(f"{len(bad)} bad rows in {path} (pass --on-bad-rows skip to "
                        f"drop them):\n{_format_bad_rows(bad)}")
    if bad:
        print(f"skipped {len(bad)} bad rows of {path}:\n{_format_bad_rows(bad)}",
              file=sys.stderr)
    if not rows:
        raise DataError(f"--data {path} has no usable data rows")
    inputs = {}
    for name, spec in served.items():
        values = [row[name] for row in rows]
        inputs[name] = (np.array(values, dtype=object) if spec["dtype"] == "string"
                        else np.stack(values))
    label_column = "labels" if "labels" in column else "label" if "label" in column else None
    labels = None
    if label_column is not None:
        k = len(info["label_names"])
        if info["multilabel"]:
            labels = np.zeros((len(rows), k), dtype=np.int32)
            for i, row in enumerate(rows):
                labels[i, row["labels"]] = 1
        else:
            labels = np.array([row["labels"][0] for row in rows], dtype=np.int64)
    ids = np.array([row["id"] for row in rows], dtype=object)
    return ids, inputs, labels, bad


def _csv_rows(reader, column, path, info, options):
    """Rows as dicts of the served inputs, and the bad `(line, reason)` pairs."""
    from ssnas_tf.data.confine import DEFAULT_MAX_PIXELS
    from ssnas_tf.data.csv_files import _read_row_file
    index = {name: i for i, name in enumerate(info["label_names"])}
    label_column = "labels" if "labels" in column else "label" if "label" in column else None
    image_shape = info["inputs"].get("image", {}).get("shape")
    image_options = {"image_root": options.get("image_root"),
                     "image_size": tuple(image_shape[1:3]) if image_shape else None,
                     "max_pixels": options.get("max_pixels", DEFAULT_MAX_PIXELS)}
    audio = info["inputs"].get("audio", {})
    audio_options = {"image_root": options.get("image_root"),
                     "sample_rate": audio.get("sample_rate"),
                     "rate_source": "the model was trained on",
                     "audio_length": (audio.get("shape") or [None, None])[1]}
    rows, bad = [], []
    previous_end = reader.line_num
    for fields in reader:
        number, previous_end = previous_end + 1, reader.line_num
        if not fields:
            continue
        if len(fields) != len(column):
            bad.append((number, f"{len(fields)} fields, the header has {len(column)}"))
            continue
        row, reasons = {"id": fields[column["id"]] if "id" in column else number}, []
        if label_column is not None:
            raw = fields[column[label_column]].strip()
            names = ([n.strip() for n in raw.split("|") if n.strip()]
                     if label_column == "labels" else [raw] if raw else [])
            unknown = [n for n in names if n not in index]
            if not names:
                reasons.append(f"empty {label_column}")
            elif unknown:
                reasons.append(f"class {unknown[0]!r} is not one of the model's "
                               f"classes {list(index)[:10]}")
            row["labels"] = [index.get(n) for n in names]
        if "text" in info["inputs"]:
            row["text"] = fields[column["text"]]
            if not row["text"].strip():
                reasons.append("empty text")
        # The CSV loader's rules: paths confined, pixel budget from the header,
        # the model's sample rate and clip length.
        for kind, options in (("image", image_options), ("audio", audio_options)):
            if kind in info["inputs"]:
                _read_row_file(kind, fields[column[kind]], path, options, number,
                               row, reasons)
        reasons += _table_cells(fields, column, info, row)
        if reasons:
            bad.append((number, "; ".join(reasons)))
        else:
            rows.append(row)
    return rows, bad


def _table_cells(fields, column, info, row):
    """Puts the row's table columns into `row`; returns the reasons it is bad."""
    from ssnas_tf.data.tabular import NUMERIC, parse_number
    reasons = []
    for name, spec in info["inputs"].items():
        if "column" not in spec:
            continue
        cell = fields[column[spec["column"]]]
        if spec.get("type") != NUMERIC:
            row[name] = cell
            continue
        try:
            row[name] = parse_number(cell)
        except ValueError:
            reasons.append(f"column {spec['column']}: {cell!r} is not a number")
    return reasons


__all__ = ["read_csv"]
