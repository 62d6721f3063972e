"""Tests that the network options of RunConfig reach the CLI and the built models."""

import keras
import numpy as np
import pytest

from ssnas_tf.cli import _config_from_args, build_parser
from ssnas_tf.nas.genotypes import EDGE_OP, Genotype, StepGenotype
from ssnas_tf.nas.layers import UnbiasedVarianceBatchNorm
from ssnas_tf.nas.operations import ScaledDotAttention
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.run import Run


def _config(*flags):
    return _config_from_args(build_parser().parse_args(["run", *flags]))


def test_reference_flags_reach_the_config():
    config = _config("--attention-dropout", "0.1", "--torch-defaults")
    assert (config.attention_dropout, config.torch_defaults) == (0.1, True)
    assert RunConfig.from_json(config.to_json()) == config
    default = _config()
    assert (default.attention_dropout, default.torch_defaults) == (None, False)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_attention_dropout_out_of_range_is_named(value):
    with pytest.raises(ValueError, match="attention_dropout"):
        RunConfig(attention_dropout=value)


def _backbones():
    inputs = {"x": keras.Input((3,), name="x"), "y": keras.Input((5,), name="y")}
    return keras.Model(inputs, {"a": keras.layers.Dense(4)(inputs["x"]),
                                "b": keras.layers.Dense(6)(inputs["y"])})


def test_encoder_is_built_with_the_reference_options(tmp_path):
    step = StepGenotype(((EDGE_OP, 0), (EDGE_OP, 1)), ("attention",), (2,))
    genotype = Genotype(inputs=("a", "b"), edges=((EDGE_OP, 0), (EDGE_OP, 1)),
                        steps=(step,), concat=(2,))
    config = RunConfig(channels=8, length=4, num_cells=1, multiplier=1, dropout=0.3,
                       attention_dropout=0.05, torch_defaults=True)
    encoder = Run(str(tmp_path), config).build_encoder(genotype, _backbones())
    layers = list(encoder._flatten_layers())
    assert [l.dropout for l in layers if isinstance(l, ScaledDotAttention)] == [0.05]
    bns = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(isinstance(l, UnbiasedVarianceBatchNorm) for l in bns)
    out = encoder({"x": np.ones((2, 3), "float32"), "y": np.ones((2, 5), "float32")})
    assert tuple(out.shape) == (2, 4 * 8)


def test_precision_flag_reaches_the_config():
    assert _config("--precision", "mixed_bfloat16").precision == "mixed_bfloat16"
    assert _config().precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        RunConfig(precision="bfloat16")


def test_training_steps_run_under_the_configured_policy(tmp_path):
    from ssnas_tf.workflow import steps
    seen = []

    class Probe(steps.Step):
        name, in_precision = "search", True

        def __call__(self, run):
            seen.append(keras.mixed_precision.global_policy().name)

    class ProbeRun(Run):
        STEPS = {**Run.STEPS, "search": Probe}

    ProbeRun(str(tmp_path), RunConfig(precision="mixed_bfloat16")).search()
    assert seen == ["mixed_bfloat16"]
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    for name in ("backbones", "search", "pretrain", "finetune"):
        assert Run.STEPS[name].in_precision  # each training step asks for it


def test_arch_order_flag_reaches_the_config():
    assert _config("--arch-order", "2").arch_order == 2
    assert _config().arch_order == 1
    with pytest.raises(ValueError, match="arch_order"):
        RunConfig(arch_order=3)
    with pytest.raises(ValueError, match="arch_order 2 needs precision"):
        RunConfig(arch_order=2, precision="mixed_float16")


def test_bad_augment_overrides_are_a_config_error(tmp_path):
    from ssnas_tf.errors import ConfigError
    run = Run(str(tmp_path), RunConfig(augment_overrides={"pix": {"crop_scale": (2.0, 3.0)}}))
    with pytest.raises(ConfigError, match="augment_overrides: .*crop_scale"):
        run.augment_config
