"""A simple SVG picture of a RandomNet architecture.

One column per modality: its cell (the L layers with op, activation and skip
sources), stacked `num_cells` times; below, the fusion layers with the cells
each one reads. Text only, no layout engine: enough to read a searched
architecture at a glance.
"""

from xml.sax.saxutils import escape

LINE = 16
CHAR = 7.2
PAD = 10


def _cell_lines(name, spec):
    lines = [f"{name} ({spec['kind']}, width {spec['width']})",
             f"cell x {spec['num_cells']}:"]
    for l, layer in enumerate(spec["cell"], start=1):
        skips = "".join(f" +n{j}" for j in layer["skips"])
        lines.append(f"n{l} = {layer['activation']}({layer['op']}(n{l - 1}{skips}))")
    return lines


def _fusion_lines(arch):
    lines = []
    for d, layer in enumerate(arch["fusion"], start=1):
        reads = [f"{m}.cell{c + 1}" for m, c in layer["reads"]] + (["f%d" % (d - 1)] if d > 1 else [])
        lines.append(f"f{d} = {layer['activation']}(Dense {layer['units']}"
                     f"[{', '.join(reads)}])")
    lines.append(f"logits = Dense(f{len(arch['fusion'])})")
    return lines


def _box(x, y, lines, fill):
    width = max(len(t) for t in lines) * CHAR + 2 * PAD
    height = len(lines) * LINE + 2 * PAD
    parts = [f'<rect x="{x}" y="{y}" width="{width:.0f}" height="{height}" rx="6" '
             f'fill="{fill}" stroke="#555"/>']
    for i, text in enumerate(lines):
        weight = ' font-weight="bold"' if i == 0 else ""
        parts.append(f'<text x="{x + PAD}" y="{y + PAD + (i + 1) * LINE - 4}"{weight}>'
                     f'{escape(text)}</text>')
    return parts, width, height


def draw_randomnet(arch, path, title=None):
    """Writes an SVG picture of `arch` (a RandomNet architecture dict) to `path`."""
    shapes, x, y0 = [], PAD, PAD + (LINE + PAD if title else 0)
    tallest = 0
    for name, spec in arch["modalities"].items():
        parts, w, h = _box(x, y0, _cell_lines(name, spec), "#e8f0fe")
        shapes += parts
        x += w + PAD
        tallest = max(tallest, h)
    parts, w, h = _box(PAD, y0 + tallest + 2 * PAD,
                       ["fusion (eq. 1)"] + _fusion_lines(arch), "#fdf0e0")
    shapes += parts
    width = max(x, w + 2 * PAD)
    height = y0 + tallest + 3 * PAD + h
    if title:
        shapes.insert(0, f'<text x="{PAD}" y="{PAD + LINE - 4}" font-weight="bold">'
                         f'{escape(title)}</text>')
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
                f'height="{height:.0f}" font-family="monospace" font-size="12">\n')
        f.write("\n".join(shapes) + "\n</svg>\n")
