"""Tests for the AV-MNIST loader on tiny files in the published npy layout."""

import os

import numpy as np
import pytest

from ssnas_tf.data import load_dataset
from ssnas_tf.data.avmnist import load_avmnist
from ssnas_tf.data.base import DataError

N_TRAIN, N_TEST = 12, 5


def _write(root, image_dir="image", n_train=N_TRAIN, n_test=N_TEST,
           audio_dtype=np.float32):
    """Writes tiny AV-MNIST files: random 0-255 data, labels row % 10."""
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("test", n_test)):
        (root / image_dir).mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(exist_ok=True)
        image = rng.integers(0, 256, size=(n, 784)).astype(np.float64)
        audio = rng.uniform(0, 255, size=(n, 112, 112)).astype(audio_dtype)
        np.save(root / image_dir / f"{part}_data.npy", image)
        np.save(root / "audio" / f"{part}_data.npy", audio)
        np.save(root / f"{part}_labels.npy", np.arange(n) % 10)
    return root


def test_loads_published_layout(tmp_path):
    root = _write(tmp_path)
    data = load_avmnist(root, valid_size=3)
    assert data.name == "avmnist"
    assert data.modalities == ("image", "audio")
    assert data.kinds == {"image": "image", "audio": "spectrogram"}
    assert data.inputs["image"].shape == (N_TRAIN + N_TEST, 28, 28, 1)
    assert data.inputs["audio"].shape == (N_TRAIN + N_TEST, 112, 112, 1)
    assert data.inputs["image"].dtype == data.inputs["audio"].dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert data.label_names == tuple("0123456789")
    assert data.labels.tolist() == [i % 10 for i in range(N_TRAIN)] + list(range(N_TEST))
    assert data.splits["train"].tolist() == list(range(9))
    assert data.splits["valid"].tolist() == [9, 10, 11]
    assert data.splits["test"].tolist() == list(range(12, 17))
    # Train rows first, then test rows; images reshaped row-major.
    image_test = np.load(root / "image" / "test_data.npy")
    np.testing.assert_array_equal(data.inputs["image"][N_TRAIN + 2, :, :, 0],
                                  image_test[2].reshape(28, 28))
    audio_train = np.load(root / "audio" / "train_data.npy")
    np.testing.assert_array_equal(data.inputs["audio"][4, :, :, 0],
                                  np.rint(audio_train[4]))


def test_mfas_images_folder_and_uint8_files(tmp_path):
    root = _write(tmp_path, image_dir="images", audio_dtype=np.uint8)
    data = load_dataset("avmnist", data_dir=str(root), valid_size=0)
    assert data.inputs["audio"].dtype == np.uint8
    assert "valid" not in data.splits
    assert len(data.splits["train"]) == N_TRAIN


def test_valid_size_larger_than_train_raises(tmp_path):
    _write(tmp_path)
    with pytest.raises(DataError, match=r"valid_size=5000 .*\[0, 12\).*12 rows"):
        load_avmnist(tmp_path)


@pytest.mark.parametrize("data_dir", [None, "absent"])
def test_missing_data_dir_raises(tmp_path, data_dir):
    with pytest.raises(DataError, match="data_dir"):
        load_avmnist(None if data_dir is None else tmp_path / data_dir)


def test_missing_image_folder_raises(tmp_path):
    _write(tmp_path)
    (tmp_path / "image").rename(tmp_path / "pictures")
    with pytest.raises(DataError, match="neither image/ .* nor images/"):
        load_avmnist(tmp_path, valid_size=2)


def test_missing_audio_folder_raises(tmp_path):
    _write(tmp_path)
    for path in (tmp_path / "audio").iterdir():
        path.unlink()
    (tmp_path / "audio").rmdir()
    with pytest.raises(DataError, match="no audio/"):
        load_avmnist(tmp_path, valid_size=2)


@pytest.mark.parametrize("name", ["image/test_data.npy", "audio/train_data.npy",
                                  "test_labels.npy"])
def test_missing_file_raises(tmp_path, name):
    _write(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(DataError, match=f"missing file .*{name}"):
        load_avmnist(tmp_path, valid_size=2)


@pytest.mark.parametrize("name, array, expected", [
    ("image/train_data.npy", np.zeros((N_TRAIN, 28, 28)), r"expected \(N, 784\)"),
    ("image/test_data.npy", np.zeros((N_TEST, 783)), r"expected \(N, 784\)"),
    ("audio/train_data.npy", np.zeros((N_TRAIN, 112, 100)),
     r"expected \(12, 112, 112\)"),
    ("audio/test_data.npy", np.zeros((N_TEST + 1, 112, 112)),
     r"expected \(5, 112, 112\)"),
    ("train_labels.npy", np.zeros(N_TRAIN - 1), r"expected \(12,\)"),
    ("test_labels.npy", np.zeros((N_TEST, 2)), r"expected \(5,\)"),
])
def test_wrong_shape_raises(tmp_path, name, array, expected):
    _write(tmp_path)
    np.save(tmp_path / name, array)
    with pytest.raises(DataError, match=f"{name} has shape .*; {expected}"):
        load_avmnist(tmp_path, valid_size=2)


def test_values_outside_0_255_raise(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "audio" / "test_data.npy", np.full((N_TEST, 112, 112), 300.0))
    with pytest.raises(DataError, match="audio/test_data.npy holds values outside 0-255"):
        load_avmnist(tmp_path, valid_size=2)


def test_unit_scaled_values_raise(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "image" / "train_data.npy",
            np.random.default_rng(0).uniform(0, 1, size=(N_TRAIN, 784)))
    with pytest.raises(DataError, match=r"looks scaled to \[0, 1\]"):
        load_avmnist(tmp_path, valid_size=2)


def test_bad_labels_raise(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "train_labels.npy", np.arange(N_TRAIN))
    with pytest.raises(DataError, match="train_labels.npy holds labels outside"):
        load_avmnist(tmp_path, valid_size=2)


def test_unknown_option_raises(tmp_path):
    with pytest.raises(DataError, match="unknown option"):
        load_avmnist(tmp_path, valid=2)


def test_streamed_rows_equal_the_in_memory_ones_and_are_prepared_once(tmp_path, capfd):
    from ssnas_tf.data.prepared import PREPARED_DIR, RowFile
    root = _write(tmp_path)
    streamed = load_avmnist(root, valid_size=3)
    assert "preparing avmnist image" in capfd.readouterr().err
    in_memory = load_avmnist(root, valid_size=3, stream=False)
    for name in ("image", "audio"):
        assert isinstance(streamed.inputs[name], RowFile)
        assert isinstance(in_memory.inputs[name], np.ndarray)
        np.testing.assert_array_equal(np.asarray(streamed.inputs[name]),
                                      in_memory.inputs[name])
    prepared = sorted(os.listdir(root / "image" / PREPARED_DIR))
    load_avmnist(root, valid_size=3)
    assert "preparing" not in capfd.readouterr().err  # reused
    assert sorted(os.listdir(root / "image" / PREPARED_DIR)) == prepared
