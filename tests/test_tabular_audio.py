"""Table columns and audio (issue 27 item 2): `ssnas_tf.data.tabular`,
`ssnas_tf.data.audio`, the CSV loader's table/audio columns, their
augmentations and the raw-column serving front."""

import os
import wave

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.data.audio import LogMelSpectrogram, read_wav
from ssnas_tf.data.base import DataError
from ssnas_tf.data.csv_files import load_csv
from ssnas_tf.data.tabular import (TabularColumns, TabularEncoder, build_table,
                                   encode_columns)


def _wav(path, samples, rate=8000, width=2, channels=1):
    scale = float(2 ** (8 * width - 1) - 1)
    values = np.repeat(np.asarray(samples, dtype=np.float64)[:, None], channels, axis=1)
    if width == 1:
        data = np.round(values * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:  # little-endian 24-bit: the low 3 bytes of an int32
        ints = np.round(values * scale).astype("<i4").reshape(-1, 1).view(np.uint8)
        data = ints.reshape(-1, 4)[:, :3].tobytes()
    else:
        data = np.round(values * scale).astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return str(path)


# ---------------------------------------------------------------------------
# The encoder.


def test_encoder_uses_the_training_rows_statistics_only():
    train = np.array([[1.0, 0.0], [3.0, 1.0], [np.nan, 2.0]], np.float32)
    encoder = TabularEncoder(["numeric", "categorical"], num_buckets=4)
    encoder.adapt(train)  # mean 2, std 1 over the two present values
    test = np.array([[100.0, 3.0], [np.nan, 1.0]], np.float32)
    out = encoder(test).numpy()
    # [normalised value, missing indicator, one-hot over 4 buckets]
    np.testing.assert_allclose(out, [[98.0, 0, 0, 0, 0, 1], [0, 1, 0, 1, 0, 0]])
    assert encoder.compute_output_shape((None, 2)) == (None, 6)


def test_encoder_saves_and_reloads(tmp_path):
    encoder = TabularEncoder(["numeric", "numeric"])
    encoder.adapt(np.array([[0.0, 5.0], [2.0, 7.0]], np.float32))
    inputs = keras.Input((2,))
    model = keras.Model(inputs, encoder(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    x = np.array([[1.0, np.nan]], np.float32)
    np.testing.assert_allclose(again(x), model(x))
    assert encoder.trainable_weights == []
    assert TabularEncoder.from_config(encoder.get_config()).column_types == [
        "numeric", "numeric"]


def test_serving_front_equals_the_training_transform():
    values = {"x": ["1.5", "", "-2"], "colour": ["red", "blue", ""]}
    array, entries, strings = build_table(values)
    assert [e["type"] for e in entries] == ["numeric", "categorical"]
    assert strings[:, 0].tolist() == ["red", "blue", ""]
    front = TabularColumns(["numeric", "categorical"])
    served = front([tf.constant([1.5, np.nan, -2.0]),
                    tf.constant([b"red", b"blue", b""])]).numpy()
    np.testing.assert_array_equal(np.isnan(served), np.isnan(array))
    np.testing.assert_array_equal(np.nan_to_num(served), np.nan_to_num(array))


def test_columns_types_and_forced_categories():
    values = {"n": ["1", "2", "NA"], "code": ["7", "8", "7"], "word": ["a", "1", ""]}
    array, entries, _ = build_table(values, categorical=["code"])
    assert [e["type"] for e in entries] == ["numeric", "categorical", "categorical"]
    assert np.isnan(array[2, 0]) and array[0, 1] == array[2, 1] != array[1, 1]
    assert encode_columns({"v": np.array([1.0])}, {"v": "numeric"}).dtype == np.float32
    weird = build_table({"a b": [1.0], "2x": [2.0]}, taken=["a_b"])[1]
    assert [e["input"] for e in weird] == ["col_a_b", "col_2x"]


# ---------------------------------------------------------------------------
# WAV files.


@pytest.mark.parametrize("width, channels", [(2, 1), (2, 2), (1, 1), (3, 1), (4, 2)])
def test_read_wav_to_float_mono(tmp_path, width, channels):
    samples = np.array([0.0, 0.5, -0.5, 0.25])
    waveform, rate = read_wav(_wav(tmp_path / "a.wav", samples, 16000, width, channels))
    assert rate == 16000 and waveform.dtype == np.float32
    np.testing.assert_allclose(waveform, samples, atol=1.0 / 100)


def test_read_wav_refuses_other_files(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF0000WAVEnot really")
    with pytest.raises(ValueError, match="bad.wav"):
        read_wav(path)


def _audio_csv(folder, rates, lines=None):
    for i, rate in enumerate(rates):
        _wav(folder / f"{i}.wav", np.sin(np.arange(rate // 10) / 3.0) * 0.5, rate)
    body = lines or [f"{i}.wav,{i % 2},{i}.5" for i in range(len(rates))]
    path = folder / "clips.csv"
    path.write_text("audio,label,x\n" + "\n".join(body) + "\n")
    return str(path)


def test_csv_audio_column_and_sample_rate_rule(tmp_path):
    data = load_csv(_audio_csv(tmp_path, [8000, 8000, 8000]), audio_seconds=0.25)
    assert data.kinds == {"audio": "audio", "tabular": "tabular"}
    assert data.inputs["audio"].shape == (3, 2000)  # 0.1 s of sound, zero-padded
    assert data.inputs["audio"].dtype == np.float32 and not data.inputs["audio"][:, 800:].any()
    assert data.extras["audio_sample_rate"] == 8000
    # Another sample rate: a bad row naming the file and the line.
    with pytest.raises(DataError, match=r"line 3: audio file .*1\.wav has sample rate "
                                        r"16000 Hz, but line 2's file has 8000 Hz"):
        load_csv(_audio_csv(tmp_path, [8000, 16000, 8000]))
    skipped = load_csv(_audio_csv(tmp_path, [8000, 16000, 8000]), on_bad_rows="skip")
    assert [line for line, _ in skipped.extras["skipped_rows"]] == [3]


def test_csv_bad_audio_files_are_bad_rows(tmp_path):
    _audio_csv(tmp_path, [8000])
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    path = _audio_csv(tmp_path, [8000], ["0.wav,a,1", "junk.wav,b,2", "missing.wav,a,3",
                                         "../0.wav,b,4"])
    with pytest.raises(DataError) as error:
        load_csv(path)
    message = str(error.value)
    assert "line 3: cannot read WAV file" in message and "junk.wav" in message
    assert "line 4: audio file" in message and "not found" in message
    assert "line 5: audio" in message


def test_csv_table_columns_and_options(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,text,age,city,zip,label\n1,a b,30,Oslo,100,x\n"
                    "2,c,,Rome,200,y\n3,d,40,Oslo,100,x\n")
    data = load_csv(str(path))
    assert list(data.kinds) == ["text", "tabular"]
    assert [(c["name"], c["type"]) for c in data.extras["tabular_columns"]] == [
        ("age", "numeric"), ("city", "categorical"), ("zip", "numeric")]
    assert np.isnan(data.inputs["tabular"][1, 0])
    forced = load_csv(str(path), ignore="age,city", categorical=["zip"])
    assert [(c["name"], c["type"]) for c in forced.extras["tabular_columns"]] == [
        ("zip", "categorical")]
    assert list(load_csv(str(path), ignore="age,city,zip").kinds) == ["text"]
    with pytest.raises(DataError, match="lacks"):
        load_csv(str(path), ignore="nope")


# ---------------------------------------------------------------------------
# Log-mel layer, backbones and augmentations.


def test_log_mel_shape_dtype_and_round_trip():
    layer = LogMelSpectrogram(8000, num_mel_bins=20)
    t = np.arange(4000) / 8000.0
    low, high = np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 2500 * t)
    out = layer(np.stack([low, high]).astype("float32"))
    assert out.shape == (2, 50, 20, 1) and out.dtype == tf.float32
    assert layer.compute_output_shape((None, 4000)) == (None, 50, 20, 1)
    # The tone's energy sits in a low band for 200 Hz, a high one for 2500 Hz.
    peaks = out.numpy()[:, 10:40, :, 0].mean(axis=1).argmax(axis=1)
    assert peaks[0] < 5 < 12 < peaks[1]
    again = LogMelSpectrogram.from_config(layer.get_config())
    np.testing.assert_allclose(again(low[None].astype("float32")), out[:1], rtol=1e-5)


def test_backbones_and_augmentations_of_the_new_kinds():
    from ssnas_tf.backbones.small import build_backbone
    from ssnas_tf.ssl.augment import (AudioAugment, TabularAugment, augment_waveforms,
                                      corrupt_rows)
    rows = np.array([[1.0, 0.0], [2.0, 5.0], [np.nan, 9.0], [4.0, 5.0]], np.float32)
    backbone = build_backbone("t", "tabular", rows, width=4,
                              column_types=["numeric", "categorical"])
    assert backbone(rows)["t_2"].shape == (4, 4)
    waves = np.zeros((2, 800), np.float32)
    taps = build_backbone("a", "audio", waves, width=4, sample_rate=8000)(waves)
    assert taps["a_1"].shape == (2, 10, 40, 2)
    with pytest.raises(ValueError, match="sample_rate"):
        build_backbone("a", "audio", waves)
    corrupted = corrupt_rows(rows, 3, TabularAugment(corruption=0.5)).numpy()
    for j in range(2):  # each value comes from the same column
        assert set(np.nan_to_num(corrupted[:, j], nan=-1)) <= set(
            np.nan_to_num(rows[:, j], nan=-1))
    assert not np.array_equal(np.nan_to_num(corrupted), np.nan_to_num(rows))
    noisy = augment_waveforms(np.full((3, 100), 0.9, np.float32), 1, AudioAugment())
    assert noisy.shape == (3, 100) and np.abs(noisy.numpy()).max() <= 1.0
    assert (noisy.numpy() == 0).any()  # the time mask


# ---------------------------------------------------------------------------
# Serving checks: NaN only where a numeric column allows it.


def test_checks_allow_nan_only_in_nan_inputs():
    from ssnas_tf.serving.checks import check_inputs
    signature = {"x": tf.TensorSpec((None,), tf.float32, name="x"),
                 "y": tf.TensorSpec((None,), tf.float32, name="y")}
    nan = {"x": tf.constant([np.nan]), "y": tf.constant([1.0])}
    check_inputs(nan, signature, nan_inputs=("x",))
    with pytest.raises(tf.errors.InvalidArgumentError, match="x: 1 non-finite"):
        check_inputs(nan, signature)
    with pytest.raises(tf.errors.InvalidArgumentError, match="x: 1 infinite"):
        check_inputs({"x": tf.constant([np.inf]), "y": tf.constant([1.0])}, signature,
                     nan_inputs=("x",))


def test_export_takes_raw_columns(tmp_path):
    from ssnas_tf.serving.export import export_classifier, load_exported
    from ssnas_tf.serving.raw_inputs import serving_inputs
    path = tmp_path / "t.csv"
    path.write_text("age,city,label\n30,Oslo,x\n,Rome,y\n40,Oslo,x\n20,Rome,y\n")
    data = load_csv(str(path))
    inputs = keras.Input((2,), name="tabular")
    encoder = TabularEncoder(["numeric", "categorical"])
    encoder.adapt(data.inputs["tabular"])
    classifier = keras.Model({"tabular": inputs},
                             keras.layers.Dense(2)(encoder(inputs)))
    served = serving_inputs(classifier, data, np.array([1, 2]))
    assert served["input_specs"] == {"age": ((), "float32"), "city": ((), "string")}
    assert served["warmup_inputs"]["city"].tolist() == [b"Rome", b"Oslo"]
    model = served.pop("model")
    version = export_classifier(model, served.pop("input_specs"), ["x", "y"], tmp_path,
                                "t", **served)
    serve = load_exported(version).signatures["serving_default"]
    got = serve(age=tf.constant([np.nan, 40.0]), city=tf.constant([b"Rome", b"Oslo"]))
    want = classifier({"tabular": data.inputs["tabular"][1:3]})
    np.testing.assert_allclose(got["probabilities"], tf.nn.softmax(want), rtol=1e-5)
    info = open(os.path.join(version, "serving_info.json")).read()
    assert '"nan_inputs": [\n    "age"\n  ]' in info
    # `ssnas predict` on a CSV: the raw cells, the ids, bad cells by line.
    from ssnas_tf.serving.predict import predict
    new = tmp_path / "new.csv"
    new.write_text("id,city,age\nA,Rome,\nB,Oslo,40\n")
    result = predict(version, str(new))
    assert result.ids.tolist() == ["A", "B"]
    np.testing.assert_allclose(result.probabilities, got["probabilities"], rtol=1e-5)
    new.write_text("id,city,age\nA,Rome,old\n")
    with pytest.raises(DataError, match="line 2: column age: 'old' is not a number"):
        predict(version, str(new))


def test_backbones_take_table_statistics_from_the_training_rows(tmp_path):
    from ssnas_tf.backbones.small import build_backbones
    path = tmp_path / "t.csv"
    path.write_text("age,city,label\n1,Oslo,x\n3,Rome,y\n,Oslo,x\n1000,Rome,y\n")
    data = load_csv(str(path))
    model = build_backbones(data, np.array([0, 1, 2]), width=4)
    encoder = model.get_layer("tabular_backbone").get_layer("tabular_encode")
    # Row 3 (1000) is not a training row; row 2 is missing.
    np.testing.assert_allclose(encoder.mean.numpy(), [2.0])
    np.testing.assert_allclose(encoder.std.numpy(), [1.0])
    assert encoder.column_types == ["numeric", "categorical"]


def test_predict_reads_wav_at_the_models_rate_and_length(tmp_path):
    from ssnas_tf.serving.export import export_classifier
    from ssnas_tf.serving.predict import predict
    inputs = keras.Input((800,), name="audio")
    features = keras.layers.Flatten()(LogMelSpectrogram(8000, num_mel_bins=8)(inputs))
    classifier = keras.Model({"audio": inputs}, keras.layers.Dense(2)(features))
    version = export_classifier(classifier, {"audio": ((800,), "float32")}, ["a", "b"],
                                tmp_path / "export", "clips",
                                input_attributes={"audio": {"sample_rate": 8000}})
    _wav(tmp_path / "ok.wav", np.full(3000, 0.1), 8000)  # longer: cut to 800
    _wav(tmp_path / "fast.wav", np.full(800, 0.1), 16000)
    clips = tmp_path / "clips.csv"
    clips.write_text("id,audio\nfirst,ok.wav\nsecond,fast.wav\n")
    with pytest.raises(DataError, match=r"line 3: audio file .*fast\.wav has sample rate "
                                        r"16000 Hz, but the model was trained on 8000 Hz"):
        predict(version, str(clips))
    result = predict(version, str(clips), on_bad_rows="skip")
    assert result.ids.tolist() == ["first"] and result.probabilities.shape == (1, 2)
