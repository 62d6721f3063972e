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
