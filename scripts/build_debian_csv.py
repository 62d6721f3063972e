"""Write the benchmark suite's Debian package data as a CSV for the `ssnas` CLI.

The same 2,000 packages `benchmarks/suite.py` draws from `apt-cache dumpavail`
(200 per archive section, seed 0): the one-line description as the `text`
column, sizes and dependency counts as numeric table columns (the `tabular`
modality), the archive section as `label`:

    python scripts/build_debian_csv.py OUT.csv
    ssnas run --dataset csv --data-dir OUT.csv

In the suite the metadata is a `vector` modality; read from this CSV it is a
`tabular` one (standardised inside the model), so the two differ in that.
"""

import argparse
import csv
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import suite  # noqa: E402

COLUMNS = ("log_installed_size", "log_size", "depends", "recommends", "suggests",
           "provides", "has_homepage", "multi_arch_same", "arch_all")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=pathlib.Path, help="the CSV file to write")
    args = parser.parse_args(argv)
    if args.output.exists():
        raise SystemExit(f"build_debian_csv: {args.output} exists; not overwriting it")
    data = suite.debian_dataset()
    metadata = data.inputs["metadata"]
    if metadata.shape[1] != len(COLUMNS):
        raise SystemExit(f"build_debian_csv: metadata has {metadata.shape[1]} columns, "
                         f"expected {len(COLUMNS)}")
    partial = args.output.with_name(args.output.name + ".partial")
    with open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("id", "text") + COLUMNS + ("label",))
        for i, (text, row, label) in enumerate(zip(data.inputs["description"],
                                                   metadata, data.labels)):
            writer.writerow([f"pkg{i:04d}", text] + [f"{v:.6g}" for v in row]
                            + [data.label_names[label]])
    os.replace(partial, args.output)  # a whole file or none
    print(f"build_debian_csv: {len(data.labels)} rows -> {args.output}")


if __name__ == "__main__":
    main()
