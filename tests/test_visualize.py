"""Genotype pictures (SVG, PNG) and the one-line-per-cell summary."""

import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from ssnas_tf.nas.genotypes import Genotype, StepGenotype
from ssnas_tf.viz.architecture import draw_genotype, genotype_summary

I = "identity"
SVG = "{http://www.w3.org/2000/svg}"

# 6 backbone features, 2 cells of 2 inner steps; Image_1, Image_3, Audio_2 unused.
TWO_CELLS = Genotype(
    inputs=("Image_1", "Image_2", "Image_3", "Image_4", "Audio_1", "Audio_2"),
    edges=((I, 1), (I, 4), (I, 6), (I, 3)),
    steps=(StepGenotype(((I, 0), (I, 1), (I, 2), (I, 0)), ("concat_fc", "attention"), (3,)),
           StepGenotype(((I, 1), (I, 0), (I, 1), (I, 2)), ("linear_glu", "sum"), (2, 3))),
    concat=(6, 7))

# 4 features, 3 cells, one of them with 3 steps and a step skipping a column.
THREE_CELLS = Genotype(
    inputs=("Image_1", "Image_2", "Text_1", "Text_2"),
    edges=((I, 0), (I, 2), (I, 4), (I, 1), (I, 5), (I, 3)),
    steps=(StepGenotype(((I, 0), (I, 1)), ("concat_fc",), (2,)),
           StepGenotype(((I, 0), (I, 1), (I, 2), (I, 1), (I, 2), (I, 0)),
                        ("sum", "attention", "linear_glu"), (3, 4)),
           StepGenotype(((I, 1), (I, 0), (I, 2), (I, 0)), ("attention", "concat_fc"), (2, 3))),
    concat=(5, 6))


def _svg_texts(path):
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg"
    return root, [(el.get("class") or "", el.text) for el in root.iter(SVG + "text")]


@pytest.mark.parametrize("genotype", [TWO_CELLS, THREE_CELLS], ids=["2cells", "3cells"])
def test_svg_names_every_op_and_input(genotype, tmp_path):
    path = tmp_path / "genotype.svg"
    assert draw_genotype(genotype, path, title="search <result> & more") == path
    root, texts = _svg_texts(path)
    words = [t for _, t in texts]
    assert "search <result> & more" in words  # escaped in the file, intact when parsed
    for op in {op for step in genotype.steps for op in step.inner_steps}:
        assert op in words
    for name in genotype.inputs:
        assert name in words
    for c in range(genotype.num_cells):
        assert f"Cell_{c + 1}" in words
    assert "output" in words
    assert len(root.findall(f"{SVG}g[@class='edge']")) == 2 * genotype.num_cells + len(
        genotype.concat)
    inner_edges = sum(len(s.inner_edges) + len(s.inner_concat) for s in genotype.steps)
    assert len(root.findall(f"{SVG}g[@class='inner-edge']")) == inner_edges
    assert float(root.get("width")) > 300 and float(root.get("height")) > 150


def test_unused_inputs_are_marked(tmp_path):
    path = tmp_path / "g.svg"
    draw_genotype(TWO_CELLS, path)
    root, texts = _svg_texts(path)
    unused = {t for cls, t in texts if "input-name" in cls.split() and "unused" in cls.split()}
    used = {t for cls, t in texts if cls == "input-name"}
    assert unused == {"Image_1", "Image_3", "Audio_2"}
    assert used == {"Image_2", "Image_4", "Audio_1"}
    grey_boxes = root.findall(f"{SVG}rect[@class='input unused']")
    assert len(grey_boxes) == 3 and all(r.get("stroke-dasharray") for r in grey_boxes)
    # With every feature used there is nothing grey and no legend.
    draw_genotype(THREE_CELLS, path)
    _, texts = _svg_texts(path)
    assert not [t for cls, t in texts if "unused" in cls or cls == "legend"]


@pytest.mark.parametrize("genotype, name", [(TWO_CELLS, "a.png"), (THREE_CELLS, "b.PNG")])
def test_png(genotype, name, tmp_path):
    path = tmp_path / name
    draw_genotype(genotype, path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert 600 < width < 3000 and 250 < height < 1500
    assert colours is None or len(colours) > 20  # drawn, not blank


def test_png_matches_svg_canvas(tmp_path):
    draw_genotype(THREE_CELLS, tmp_path / "g.png")
    draw_genotype(THREE_CELLS, tmp_path / "g.svg")
    root = ET.parse(tmp_path / "g.svg").getroot()
    with Image.open(tmp_path / "g.png") as image:
        assert image.size == (int(root.get("width")), int(root.get("height")))


@pytest.mark.parametrize("name", ["g.pdf", "g.jpg", "g"])
def test_bad_extension(name, tmp_path):
    with pytest.raises(ValueError, match=r"\.svg, \.png"):
        draw_genotype(TWO_CELLS, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_summary():
    assert genotype_summary(TWO_CELLS).splitlines() == [
        "Inputs: Image_2, Image_4, Audio_1 (unused: Image_1, Image_3, Audio_2)",
        "Cell_1 = Step_2 with Step_1 = concat_fc(Image_2, Audio_1), "
        "Step_2 = attention(Step_1, Image_2)",
        "Cell_2 = concat(Step_1, Step_2) with Step_1 = linear_glu(Image_4, Cell_1), "
        "Step_2 = sum(Image_4, Step_1)",
        "Output = concat(Cell_1, Cell_2)",
    ]
    lines = genotype_summary(THREE_CELLS).splitlines()
    assert lines[0] == "Inputs: Image_1, Image_2, Text_1, Text_2"
    assert lines[1] == "Cell_1 = concat_fc(Image_1, Text_1)"
    assert lines[2].startswith("Cell_2 = concat(Step_2, Step_3) with Step_1 = sum(Cell_1, Image_2)")
    assert lines[-1] == "Output = concat(Cell_2, Cell_3)"
    assert len(lines) == THREE_CELLS.num_cells + 2
