"""Audio: WAV files read with the standard library, log-mel spectrograms in the model.

An `audio` modality is a float32 (N, L) array of mono waveforms in [-1, 1],
all at one sample rate (`dataset.extras["audio_sample_rate"]`) and cut or
zero-padded to one length L. `read_wav` reads PCM WAV files (8-, 16-, 24- or
32-bit integer samples, mono or stereo; channels are averaged) with the
`wave` module. The spectrogram is computed INSIDE the model by
`LogMelSpectrogram` (`tf.signal`, core ops only), so an export takes the
waveform itself.
"""

import math
import struct
import wave
from typing import Tuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers

AUDIO = "audio"
SAMPLE_RATE_KEY = "audio_sample_rate"  # extras key: the samples per second
DEFAULT_SECONDS = 1.0


class AudioError(ValueError):
    """A WAV file that cannot be read; the message names the file."""


def read_wav(path) -> Tuple[np.ndarray, int]:
    """Reads a PCM WAV file as a float32 mono waveform in [-1, 1].

    Args:
        path: the file.

    Returns:
        `(waveform (samples,) float32, sample rate)`.

    Raises:
        AudioError: not a WAV file, compressed, or an unsupported sample width.

    Example:

    >>> waveform, rate = read_wav("clip.wav")
    >>> waveform.dtype, rate
    (dtype('float32'), 16000)
    """
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            rate, frames = handle.getframerate(), handle.getnframes()
            data = handle.readframes(frames)
    except (wave.Error, EOFError, RuntimeError, ValueError, struct.error) as error:
        # A truncated or malformed chunk raises RuntimeError or struct.error.
        raise AudioError(f"cannot read WAV file {path}: {error!r}") from None
    if width not in (1, 2, 3, 4) or channels < 1:
        raise AudioError(f"WAV file {path}: {8 * width}-bit samples are not supported; "
                         f"expected 8-, 16-, 24- or 32-bit PCM")
    count = len(data) // (width * channels)
    raw = np.frombuffer(data[:count * width * channels], dtype=np.uint8)
    if width == 1:  # 8-bit WAV is unsigned
        samples = raw.astype(np.float32) / 128.0 - 1.0
    elif width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = np.where(values >= 1 << 23, values - (1 << 24), values)
        samples = values.astype(np.float32) / float(1 << 23)
    else:
        dtype = np.dtype("<i2") if width == 2 else np.dtype("<i4")
        samples = np.frombuffer(raw.tobytes(), dtype=dtype).astype(np.float32) / float(
            1 << (8 * width - 1))
    samples = samples.reshape(-1, channels).mean(axis=1)
    return np.clip(samples, -1.0, 1.0).astype(np.float32), int(rate)


def fit_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """The first `length` samples, zero-padded at the end when shorter."""
    out = np.zeros(length, dtype=np.float32)
    out[:min(length, len(waveform))] = waveform[:length]
    return out


def num_samples(seconds: float, sample_rate: int) -> int:
    """Samples kept per clip: `round(seconds * sample_rate)`, at least 1."""
    return max(1, int(round(float(seconds) * sample_rate)))


def preprocessing_steps(seconds: float, sample_rate: int):
    """What a client must repeat on a WAV file (extras["preprocessing"])."""
    return {AUDIO: [
        f"PCM WAV at {sample_rate} Hz read as float32 in [-1, 1] (integer samples "
        f"divided by 2**(bits-1); 8-bit: (v - 128) / 128), channels averaged to mono",
        f"cut to the first {num_samples(seconds, sample_rate)} samples "
        f"({seconds:g} s), zero-padded at the end when shorter"]}


@keras.saving.register_keras_serializable(package="ssnas_tf")
class LogMelSpectrogram(layers.Layer):
    """Waveforms (N, L) -> log-mel spectrograms (N, frames, num_mel_bins, 1).

    STFT with a Hann window (`tf.signal.stft`, end padded), power spectrum,
    triangular mel filters (`tf.signal.linear_to_mel_weight_matrix`), then
    `log(mel + 1e-6)`.

    Args:
        sample_rate: samples per second of the input.
        frame_seconds: window length in seconds. Defaults to 0.025.
        step_seconds: hop between windows in seconds. Defaults to 0.010.
        num_mel_bins: mel bands. Defaults to 40.
        lower_hz: lowest mel band edge. Defaults to 20.0.
        upper_hz: highest edge; None means sample_rate / 2. Defaults to None.

    Example:

    >>> LogMelSpectrogram(8000)(np.zeros((2, 8000), "float32")).shape
    TensorShape([2, 100, 40, 1])
    """

    def __init__(self, sample_rate, frame_seconds=0.025, step_seconds=0.010,
                 num_mel_bins=40, lower_hz=20.0, upper_hz=None, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
        self.frame_seconds, self.step_seconds = float(frame_seconds), float(step_seconds)
        self.num_mel_bins = int(num_mel_bins)
        self.lower_hz = float(lower_hz)
        self.upper_hz = None if upper_hz is None else float(upper_hz)
        self.frame_length = max(2, int(round(self.frame_seconds * self.sample_rate)))
        self.frame_step = max(1, int(round(self.step_seconds * self.sample_rate)))
        self.fft_length = 2 ** math.ceil(math.log2(self.frame_length))
        upper = self.upper_hz or self.sample_rate / 2.0
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            self.num_mel_bins, self.fft_length // 2 + 1, self.sample_rate,
            min(self.lower_hz, upper / 2), upper)

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        stft = tf.signal.stft(x, self.frame_length, self.frame_step, self.fft_length,
                              pad_end=True)
        power = tf.math.square(tf.math.abs(stft))
        mel = tf.tensordot(power, self._mel, 1)
        return tf.math.log(mel + 1e-6)[..., None]

    def frames(self, length):
        """Spectrogram frames of a waveform of `length` samples."""
        return -(-int(length) // self.frame_step)

    def compute_output_shape(self, input_shape):
        length = input_shape[-1]
        return (input_shape[0], None if length is None else self.frames(length),
                self.num_mel_bins, 1)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, frame_seconds=self.frame_seconds,
                      step_seconds=self.step_seconds, num_mel_bins=self.num_mel_bins,
                      lower_hz=self.lower_hz, upper_hz=self.upper_hz)
        return config


__all__ = ["AUDIO", "AudioError", "DEFAULT_SECONDS", "LogMelSpectrogram", "SAMPLE_RATE_KEY",
           "fit_length", "num_samples", "preprocessing_steps", "read_wav"]
