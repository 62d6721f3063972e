"""Cells with no path to the output: derived, not built, and marked in pictures."""

import numpy as np

from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.nas.genotypes import Genotype, StepGenotype
from ssnas_tf.viz.architecture import draw_genotype, genotype_summary

STEP = StepGenotype((("identity", 0), ("identity", 1)), ("concat_fc",), (2,))


def _genotype():
    # inputs a, b, c (0..2); cells 3..6. Output = Cell_3, Cell_4. Cell_3 reads
    # Cell_1; Cell_2 feeds nothing that reaches the output.
    return Genotype(inputs=("a", "b", "c"),
                    edges=(("identity", 0), ("identity", 1),   # Cell_1(a, b)
                           ("identity", 1), ("identity", 2),   # Cell_2(b, c): dead
                           ("identity", 3), ("identity", 0),   # Cell_3(Cell_1, a)
                           ("identity", 0), ("identity", 1)),  # Cell_4(a, b)
                    steps=(STEP,) * 4, concat=(5, 6))


def test_live_cells_follow_paths_back_from_the_output():
    g = _genotype()
    assert g.live_cells == (0, 2, 3)
    assert g.used_inputs == ("a", "b")  # c is read by the dead cell only


def test_derived_network_builds_only_live_cells_and_their_inputs():
    net = DerivedNetwork(_genotype(), channels=8, length=4)
    out = net({n: np.random.rand(2, 5).astype("float32") for n in ("a", "b")})
    assert out.shape == (2, 4 * 2 * 8)
    assert net.cells[1] is None and all(net.cells[i] is not None for i in (0, 2, 3))
    assert sorted(net.reshapes) == ["a", "b"]


def test_pictures_and_summary_mark_dead_cells(tmp_path):
    g = _genotype()
    assert "Cell_2 (unused: no path to the output)" in genotype_summary(g)
    assert "Cell_1 (unused" not in genotype_summary(g)
    svg = draw_genotype(g, str(tmp_path / "g.svg"))
    text = open(svg).read()
    assert "Cell_2 (unused)" in text and "Cell_3 (unused)" not in text


def _dead_step_genotype():
    # One cell of two steps whose output is Step_2 = linear_glu(x, y): Step_1,
    # attention(x, y), reaches nothing (as the clipart runs derived).
    step = StepGenotype((("identity", 0), ("identity", 1), ("identity", 0), ("identity", 1)),
                        ("attention", "linear_glu"), (3,))
    return Genotype(inputs=("a", "b"), edges=(("identity", 0), ("identity", 1)),
                    steps=(step,), concat=(2,))


def test_dead_inner_steps_are_not_built_and_every_weight_gets_a_gradient():
    import tensorflow as tf

    g = _dead_step_genotype()
    assert g.steps[0].live_steps == (1,)
    net = DerivedNetwork(g, channels=8, length=4)
    inputs = {n: np.random.rand(3, 5).astype("float32") for n in ("a", "b")}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(net(inputs, training=True) ** 2)
    grads = tape.gradient(loss, net.trainable_weights)
    assert net.cells[0].ops[0] is None
    assert not any("attention" in w.path for w in net.trainable_weights)
    assert all(grad is not None for grad in grads)
    assert "Step_1 = attention(a, b) (unused)" in genotype_summary(g)
    assert "Step_2 = linear_glu(a, b) (unused)" not in genotype_summary(g)


def test_a_step_read_by_a_live_step_is_live():
    step = StepGenotype((("identity", 0), ("identity", 1), ("identity", 2), ("identity", 1),
                         ("identity", 0), ("identity", 1)),
                        ("sum", "concat_fc", "attention"), (3,))
    assert step.live_steps == (0, 1)  # Step_2 reads Step_1; Step_3 reaches nothing


def test_configs_saved_before_pruning_still_build_dead_steps():
    net = DerivedNetwork(_dead_step_genotype(), channels=8, length=4)
    config = net.get_config()
    assert DerivedNetwork.from_config(dict(config)).cells[0].ops[0] is None
    del config["build_dead_steps"]  # as written by earlier versions
    old = DerivedNetwork.from_config(config)
    assert old.cells[0].ops[0] is not None  # its saved weights load as they were saved
