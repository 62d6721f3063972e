"""Tests for the CSV loader of image + text data."""

import re

import numpy as np
import pytest
from PIL import Image

from ssnas_tf.data import load_dataset
from ssnas_tf.data.base import DataError
from ssnas_tf.data.csv_files import load_csv


def _image(path, mode="RGB", size=(12, 8)):
    """Saves an image whose top half is red and bottom half blue."""
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[: size[1] // 2, :, 0] = 255
    array[size[1] // 2:, :, 2] = 255
    Image.fromarray(array).convert(mode).save(path)
    return path.name


def _write_csv(folder, text, name="items.csv"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    _image(tmp_path / "img" / "a.png")
    _image(tmp_path / "img" / "b.jpg")
    _image(tmp_path / "img" / "gray.png", mode="L")
    (tmp_path / "img" / "broken.png").write_bytes(b"not an image")
    return tmp_path


def test_single_label_image_and_text(folder):
    path = _write_csv(folder, (
        "image,text,label,split\n"
        "img/a.png,a red thing,cat,train\n"
        "img/b.jpg,\"quoted, with comma\",bird,valid\n"
        "img/gray.png,grey,cat,TEST\n"))
    data = load_csv(path, image_size=(4, 6))
    assert data.name == "items"
    assert data.modalities == ("image", "text")
    assert data.kinds == {"image": "image", "text": "text"}
    assert data.inputs["image"].shape == (3, 4, 6, 3)
    assert data.inputs["image"].dtype == np.uint8
    assert data.inputs["text"].dtype == object
    assert data.inputs["text"].tolist() == ["a red thing", "quoted, with comma", "grey"]
    assert data.label_names == ("bird", "cat")
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [1, 0, 1]
    assert not data.multilabel
    assert {k: v.tolist() for k, v in data.splits.items()} == {
        "train": [0], "valid": [1], "test": [2]}
    # Upright: red on top, blue at the bottom.
    top, bottom = data.inputs["image"][0, 0, 0], data.inputs["image"][0, -1, 0]
    assert top.tolist() == [255, 0, 0] and bottom.tolist() == [0, 0, 255]
    assert data.inputs["image"][2, 0, 0, 0] == data.inputs["image"][2, 0, 0, 1]


def test_multilabel_text_only_without_split(folder):
    path = _write_csv(folder, "id,text,labels\n1,x,b|a\n2,y, c \n3,z,a|a\n")
    data = load_dataset("csv", data_dir=str(path))
    assert data.modalities == ("text",)
    assert data.multilabel
    assert data.label_names == ("a", "b", "c")
    assert data.labels.tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 0]]
    assert data.splits == {}


def test_image_only_default_size_and_transparency(folder):
    array = np.zeros((5, 5, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(array, mode="RGBA").save(folder / "img" / "clear.png")
    path = _write_csv(folder, "image,label\nimg/clear.png,x\nimg/a.png,y\n")
    data = load_csv(path)
    assert data.modalities == ("image",)
    assert data.inputs["image"].shape == (2, 64, 64, 3)
    assert data.inputs["image"][0].min() == 255  # composited on white


def test_bad_rows_fail_with_line_numbers(folder):
    path = _write_csv(folder, (
        "image,text,label,split\n"
        "img/a.png,ok,cat,train\n"
        "img/missing.png,t,cat,train\n"
        "img/broken.png,t,cat,train\n"
        "img/a.png,\"two\nlines\",,train\n"
        "img/a.png,   ,cat,train\n"
        "img/a.png,t,cat,holdout\n"
        "img/a.png,t,cat,\n"
        "img/a.png,t\n"
        ",t,cat,test\n"))
    with pytest.raises(DataError) as error:
        load_csv(path)
    message = str(error.value)
    assert "8 bad rows" in message and "items.csv" in message
    for expected in ["line 3: image file .*missing.png not found",
                     "line 4: cannot decode image .*broken.png",
                     "line 5: empty label",  # record starting on line 5
                     "line 7: empty text",
                     "line 8: split 'holdout' is not one of train, valid, test",
                     "line 9: split '' is not one",
                     "line 10: 2 fields, the header has 4",
                     "line 11: empty image path"]:
        assert re.search(expected, message), expected
    assert "line 2" not in message


def test_skip_mode_drops_and_reports(folder, capsys):
    path = _write_csv(folder, (
        "image,label\nimg/a.png,cat\nimg/missing.png,cat\nimg/b.jpg,dog\n"
        "img/broken.png,dog\n"))
    data = load_csv(path, on_bad_rows="skip")
    assert data.num_samples == 2 and data.labels.tolist() == [0, 1]
    assert [line for line, _ in data.extras["skipped_rows"]] == [3, 5]
    printed = capsys.readouterr().err
    assert f"skipped 2 bad rows of {path}" in printed
    assert "line 3:" in printed and "line 5:" in printed


def test_many_bad_rows_are_listed_then_counted(folder):
    path = _write_csv(folder, "text,label\n" + "t,\n" * 25)
    with pytest.raises(DataError, match=r"25 bad rows") as error:
        load_csv(path)
    assert "line 21: empty label" in str(error.value)
    assert "line 22" not in str(error.value)
    assert "... and 5 more" in str(error.value)


def test_allow_empty_text(folder):
    path = _write_csv(folder, "text,label\n,a\nx,b\n")
    assert load_csv(path, allow_empty_text=True).inputs["text"].tolist() == ["", "x"]


def test_all_rows_skipped_raises(folder):
    path = _write_csv(folder, "text,label\nx,\n")
    with pytest.raises(DataError, match="no usable data rows"):
        load_csv(path, on_bad_rows="skip")


@pytest.mark.parametrize("header, match", [
    ("image,text\n", "exactly one of the columns 'label'"),
    ("text,label,labels\n", "exactly one of the columns 'label'"),
    ("id,label\n", "needs an 'image', 'audio' or 'text' column or table"),
    ("id,extra,label\nfeature 1,x,a\n", None),
    ("text,text,label\n", "duplicate column names"),
    ("", "is empty"),
])
def test_bad_header_raises(folder, header, match):
    path = _write_csv(folder, header)
    if match is None:  # a table column is a feature: no error
        assert load_csv(path).kinds == {"tabular": "tabular"}
        with pytest.raises(DataError, match="needs an 'image'"):
            load_csv(path, ignore="extra")  # the old behaviour: extra columns ignored
        return
    with pytest.raises(DataError, match=match):
        load_csv(path)


def test_path_errors(folder):
    with pytest.raises(DataError, match="is a directory; pass the path of the CSV"):
        load_csv(folder)
    with pytest.raises(DataError, match="not found"):
        load_csv(folder / "absent.csv")
    with pytest.raises(DataError, match="data_dir is required"):
        load_csv()


@pytest.mark.parametrize("options, match", [
    ({"on_bad_rows": "ignore"}, "on_bad_rows"),
    ({"image_size": 64}, "image_size"),
    ({"image_size": (0, 3)}, "image_size"),
    ({"colour": True}, "unknown option"),
])
def test_bad_options_raise(folder, options, match):
    path = _write_csv(folder, "text,label\nx,a\n")
    with pytest.raises(DataError, match=match):
        load_csv(path, **options)


def test_preprocessing_a_client_must_repeat_is_stated(folder):
    path = _write_csv(folder, "image,text,label\nimg/a.png,hello,x\n")
    steps = load_csv(path, image_size=(4, 6)).extras["preprocessing"]
    assert list(steps) == ["image"]  # text is normalised inside the model
    assert "alpha-composited over opaque white" in steps["image"][0]
    assert "resized to 6x4" in steps["image"][1] and "(4, 6, 3)" in steps["image"][1]


@pytest.fixture()
def escaping(tmp_path):
    """A CSV in data/ whose three image paths all leave data/, and the images."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "img").mkdir(parents=True)
    outside.mkdir()
    _image(data / "img" / "a.png")
    for name in ("abs.png", "up.png", "target.png"):
        _image(outside / name)
    (data / "img" / "link.png").symlink_to(outside / "target.png")
    path = _write_csv(data, (
        "image,label\n"
        "img/a.png,inside\n"
        f"{outside / 'abs.png'},absolute\n"
        "img/../../outside/up.png,dotdot\n"
        "img/link.png,symlink\n"))
    return path, tmp_path


def test_image_paths_leaving_the_csv_folder_are_bad_rows(escaping):
    """An absolute path, an escaping '..' and an escaping symlink: three bad
    rows naming their lines; the images they point at are never read."""
    path, _ = escaping
    with pytest.raises(DataError) as error:
        load_csv(path, image_size=(4, 4))
    message = str(error.value)
    assert "3 bad rows" in message
    assert re.search(r"line 3: image absolute path .*abs\.png is not allowed", message)
    assert re.search(r"line 4: image path img/\.\./\.\./outside/up\.png leads outside "
                     r".*data", message)
    assert re.search(r"line 5: image path img/link\.png resolves through a symbolic "
                     r"link to .*target\.png, outside .*data", message)
    assert "image_root=DIR" in message
    assert "line 2" not in message
    data = load_csv(path, image_size=(4, 4), on_bad_rows="skip")
    assert data.label_names == ("inside",)
    assert [line for line, _ in data.extras["skipped_rows"]] == [3, 4, 5]


def test_image_root_allows_a_folder_that_holds_them(escaping):
    path, top = escaping
    data = load_dataset("csv", data_dir=str(path), image_size=(4, 4),
                        image_root=str(top))
    assert data.label_names == ("absolute", "dotdot", "inside", "symlink")
    assert data.inputs["image"].shape == (4, 4, 4, 3)
    # image_root confines too: here to data/, which holds none of the three.
    with pytest.raises(DataError, match="3 bad rows"):
        load_csv(path, image_size=(4, 4), image_root=str(path.parent))
    # Paths that leave image_root are refused with it set as well.
    other = _write_csv(path.parent, "image,label\n/etc/hostname,x\n../../x.png,y\n",
                       name="other.csv")
    with pytest.raises(DataError) as error:
        load_csv(other, image_root=str(top))
    assert re.search(r"line 2: image absolute path /etc/hostname leads outside", str(error.value))
    assert re.search(r"line 3: image path \.\./\.\./x\.png leads outside", str(error.value))
    with pytest.raises(DataError, match="image_root must be an existing folder"):
        load_csv(path, image_root=str(top / "absent"))


def test_images_over_the_pixel_budget_are_bad_rows_before_decoding(folder, monkeypatch):
    big = np.zeros((300, 200, 3), dtype=np.uint8)
    Image.fromarray(big).save(folder / "img" / "big.png")
    path = _write_csv(folder, "image,label\nimg/a.png,x\nimg/big.png,y\n")
    decoded = []
    original_convert = Image.Image.convert

    def spy(self, *args, **kwargs):
        decoded.append(self.size)
        return original_convert(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", spy)
    with pytest.raises(DataError) as error:
        load_csv(path, image_size=(4, 4), max_pixels=200 * 299)
    assert re.search(r"line 3: image .*big\.png is 200x300 = 60,000 pixels, over the "
                     r"pixel budget of 59,800 \(option max_pixels\); not decoded",
                     str(error.value))
    assert (200, 300) not in decoded  # refused from the header alone
    assert load_csv(path, image_size=(4, 4), max_pixels=200 * 300).num_samples == 2
    with pytest.raises(DataError, match="max_pixels must be a positive integer"):
        load_csv(path, max_pixels=0)


def test_cli_dataset_option_image_root(escaping):
    """`--dataset-option image_root=DIR` reaches the loader as a plain path."""
    from ssnas_tf.cli import _config_from_args, build_parser

    path, top = escaping
    args = build_parser().parse_args([
        "run", "--dataset", "csv", "--data-dir", str(path),
        "--dataset-option", f"image_root={top}", "--dataset-option", "image_size=[4, 4]"])
    options = _config_from_args(args).dataset_options
    assert options == {"image_root": str(top), "image_size": [4, 4]}
    assert load_dataset("csv", data_dir=str(path), **options).num_samples == 4
