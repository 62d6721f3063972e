"""Pictures and one-line summaries of a derived architecture (a `Genotype`).

`draw_genotype` draws the picture of BM-NAS Fig. 4 / Suzuki & Ono (2025) Fig. 4:
the backbone features on the left (grey when no live cell reads them), one box per
cell with its inner DAG (inputs x and y, the inner steps with their primitive,
the concatenation of the `inner_concat` steps), arrows from each cell's two
chosen inputs, and the `concat` cells joined into "output".

Layout: the cells run down a staircase, cell k one column right of and below
cell k-1. Edges are routed at right angles through the gaps between columns, so
an arrow into cell k passes under the cells before it and never through a box;
arrows into cell k share cell k's colour. Inside a cell the same rule holds:
x sits on the top row, y on the bottom row, the steps on the middle row, and an
edge that skips a step detours through the band above (into a step) or below
(into the concat node) the middle row.

The layout is computed once as a list of shapes and written either as SVG text
(no dependency) or as a PNG with PIL's ImageDraw, chosen by the file extension.

Reference: Yin, Huang & Zhang, "BM-NAS: Bilevel Multimodal Neural Architecture
Search", AAAI 2022, Fig. 4; Suzuki & Ono, 2025, Fig. 4.

Length: over 500 lines because the right-angle edge routing (lanes between
columns, bands inside a cell) is one layout computation; split, its pieces
would have to share its private geometry.
"""

import itertools
import os
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

FORMATS = (".svg", ".png")

FONT_SIZE = 14
SMALL_SIZE = 12
TITLE_SIZE = 17
NODE_H = 28          # input, x, y, output nodes
STEP_H = 42          # two text lines: "Step_1" and the primitive
PAD = 14             # inside a cell box
CELL_TITLE_H = 20
LANE = 10            # distance between parallel routed lines
BAND_MIN = 16
GAP_Y = 18           # between the staircase's cells
MARGIN = 20
ARROW = 7

CELL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                "#8c564b", "#e377c2", "#17becf")
INK = "#222222"
INNER_INK = "#555555"
UNUSED_FILL, UNUSED_INK = "#efefef", "#a0a0a0"
INPUT_FILL = "#dbe8fb"
XY_FILL = "#eef3fb"
STEP_FILL = "#fff4d9"
CONCAT_FILL = "#f1f1f1"
OUTPUT_FILL = "#dff2df"
CELL_FILL = "#fbfcfe"


def genotype_summary(genotype):
    """A compact text rendering, one line per cell, for logs.

    Cell inputs x and y are written as the nodes they read; a one-step cell is
    written as a call, a cell with more steps lists its steps after "with".

    Args:
        genotype: a `Genotype`.

    Returns:
        Lines like:

        ```
        Inputs: Image_1, Image_2, Text_1 (unused: Image_3)
        Cell_1 = concat_fc(Image_1, Text_1)
        Cell_2 = concat(Step_1, Step_2) with Step_1 = sum(Cell_1, Image_2), Step_2 = attention(Step_1, Cell_1)
        Output = concat(Cell_1, Cell_2)
        ```
    """
    names = _node_names(genotype)
    used = set(genotype.used_inputs)
    unused = [n for n in genotype.inputs if n not in used]
    lines = ["Inputs: " + ", ".join(genotype.used_inputs)
             + (f" (unused: {', '.join(unused)})" if unused else "")]
    for c, step in enumerate(genotype.steps):
        h1, h2 = genotype.cell_inputs(c)
        inner = [names[h1], names[h2]] + [f"Step_{s + 1}" for s in range(len(step.inner_steps))]
        calls = [f"{op}({inner[step.inner_edges[2 * s][1]]}, "
                 f"{inner[step.inner_edges[2 * s + 1][1]]})"
                 for s, op in enumerate(step.inner_steps)]
        name = names[len(genotype.inputs) + c]
        if c not in genotype.live_cells:
            name += " (unused: no path to the output)"
        if len(calls) == 1:
            lines.append(f"{name} = {calls[0]}")
            continue
        out = [inner[i] for i in step.inner_concat]
        head = out[0] if len(out) == 1 else f"concat({', '.join(out)})"
        live = step.live_steps
        steps = ", ".join(f"Step_{s + 1} = {call}" + ("" if s in live else " (unused)")
                          for s, call in enumerate(calls))
        lines.append(f"{name} = {head} with {steps}")
    lines.append(f"Output = concat({', '.join(names[i] for i in genotype.concat)})")
    return "\n".join(lines)


def draw_genotype(genotype, path, title=None):
    """Writes a picture of `genotype` to `path`, SVG or PNG by extension.

    Args:
        genotype: a `Genotype`.
        path: output file; its extension (".svg" or ".png", any case) picks
            the format.
        title: optional heading drawn above the picture. Defaults to None.

    Returns:
        `path`.

    Raises:
        ValueError: the extension is neither .svg nor .png.

    Example:
    >>> draw_genotype(genotype, "runs/avmnist/genotype.png", title="AV-MNIST")
    >>> print(genotype_summary(genotype))
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"{path}: cannot draw a genotype as '{ext or '(no extension)'}'; "
            f"use one of {', '.join(FORMATS)}")
    fonts = _Fonts()
    shapes, width, height = _Layout(genotype, fonts, title).build()
    if ext == ".svg":
        _write_svg(shapes, width, height, path)
    else:
        _write_png(shapes, width, height, path, fonts)
    return path


# --------------------------------------------------------------------- layout


def _node_names(genotype):
    return list(genotype.inputs) + [f"Cell_{c + 1}" for c in range(genotype.num_cells)]


class _Fonts:
    """PIL fonts by size; they also measure text for the SVG layout."""

    def __init__(self):
        self._cache = {}

    def get(self, size):
        if size not in self._cache:
            try:
                self._cache[size] = ImageFont.load_default(size=size)
            except (TypeError, ImportError, OSError):  # no FreeType: bitmap font
                self._cache[size] = ImageFont.load_default()
        return self._cache[size]

    def width(self, text, size=FONT_SIZE):
        # Slack for SVG viewers whose sans-serif font runs wider than PIL's.
        return 1.1 * self.get(size).getlength(text)


class _Box:
    def __init__(self, x, y, w, h):
        self.x, self.y, self.w, self.h = x, y, w, h

    @property
    def right(self):
        return self.x + self.w

    @property
    def bottom(self):
        return self.y + self.h

    @property
    def cy(self):
        return self.y + self.h / 2

    def slot(self, i, count):
        """The y of the i-th of `count` arrow ends spread along the left side."""
        return self.y + self.h * (i + 1) / (count + 1)


class _Layout:
    """Computes the shapes: ("rect" | "line" | "text", {attributes})."""

    def __init__(self, genotype, fonts, title):
        self.g = genotype
        self.fonts = fonts
        self.title = title
        self.names = _node_names(genotype)
        self.frames, self.lines, self.boxes, self.texts = [], [], [], []

    # Shapes are collected in layers so that lines never run over a node and
    # text is never hidden: cell frames, then lines, then nodes, then text.
    def _rect(self, box, fill, stroke, cls, width=1.5, dashed=False, radius=6,
              background=False):
        layer = self.frames if background else self.boxes
        layer.append(("rect", dict(x=box.x, y=box.y, w=box.w, h=box.h, fill=fill,
                                   stroke=stroke, width=width, dashed=dashed,
                                   radius=radius, cls=cls)))

    def _text(self, x, y, text, size=FONT_SIZE, colour=INK, anchor="middle", cls=None):
        self.texts.append(("text", dict(x=x, y=y, text=text, size=size, colour=colour,
                                        anchor=anchor, cls=cls)))

    def _line(self, points, colour, width=2.0, cls=None):
        self.lines.append(("line", dict(points=_simplify(points), colour=colour,
                                        width=width, cls=cls)))

    def build(self):
        """(shapes, width, height) of the whole drawing."""
        g = self.g
        k, n = len(g.inputs), g.num_cells
        top = MARGIN + (TITLE_SIZE + 16 if self.title else 0)
        if self.title:
            self._text(MARGIN, MARGIN + TITLE_SIZE / 2, self.title, size=TITLE_SIZE,
                       anchor="start", cls="title")
        # nodes[i] is the box node i's arrows leave from (a cell's: its concat node).
        nodes, input_w = self._draw_inputs(top)
        routes = self._outer_routes()
        gutter_w = [_gutter_width(sum(r[4] == gutter for r in routes))
                    for gutter in range(n + 1)]
        plans = [_CellPlan(step, self._inner_labels(c), self.fonts)
                 for c, step in enumerate(g.steps)]
        cells, gutter_x = self._place_cells(plans, MARGIN + input_w, top, gutter_w)
        for c, cell in enumerate(cells):
            self._draw_cell(c, cell, plans[c])
            nodes[k + c] = plans[c].node_box("concat", cell.x, cell.y)
        out_h = max(NODE_H, 12 * (len(g.concat) + 1))
        out_cy = sum(nodes[i].cy for i in g.concat) / len(g.concat)
        out_box = _Box(gutter_x[n] + gutter_w[n], out_cy - out_h / 2,
                       self.fonts.width("output") + 28, out_h)
        self._draw_edges(routes, nodes, cells, plans, out_box, gutter_x)
        self._rect(out_box, OUTPUT_FILL, "#3b8a3b", cls="output")
        self._text(out_box.x + out_box.w / 2, out_box.cy, "output", cls="output-name")
        inputs_bottom = top + k * (NODE_H + 10) - 10
        bottom = self._legend(max(inputs_bottom, cells[-1].bottom, out_box.bottom))
        shapes = self.frames + self.lines + self.boxes + self.texts
        return shapes, int(out_box.right + MARGIN + 1), int(bottom + MARGIN + 1)

    def _draw_inputs(self, top):
        """Backbone features stacked on the left: ({node: box}, column width)."""
        g, used = self.g, set(self.g.used_inputs)
        input_w = max(self.fonts.width(name) for name in g.inputs) + 24
        nodes = {}
        for i, name in enumerate(g.inputs):
            box = _Box(MARGIN, top + i * (NODE_H + 10), input_w, NODE_H)
            unused = name not in used
            self._rect(box, UNUSED_FILL if unused else INPUT_FILL,
                       UNUSED_INK if unused else "#4a72b0",
                       cls="input unused" if unused else "input", dashed=unused)
            self._text(box.x + box.w / 2, box.cy, name,
                       colour=UNUSED_INK if unused else INK,
                       cls="input-name unused" if unused else "input-name")
            nodes[i] = box
        return nodes, input_w

    def _outer_routes(self):
        """Outer edges: (source node, target cell or "output", slot, slot count,
        gutter). Gutter 0 lies before cell 1 and carries every edge from a
        backbone feature; gutter c before cell c+1; gutter n before the output."""
        g = self.g
        k, n = len(g.inputs), g.num_cells
        routes = []
        for c in range(n):
            for slot, src in enumerate(g.cell_inputs(c)):
                routes.append((src, c, slot, 2, 0 if src < k else c))
        for slot, src in enumerate(g.concat):
            routes.append((src, "output", slot, len(g.concat), n))
        return routes

    @staticmethod
    def _place_cells(plans, x, y, gutter_w):
        """Cell boxes on a descending diagonal, and each gutter's left x."""
        cells, gutter_x = [], []
        for c, plan in enumerate(plans):
            gutter_x.append(x)
            cell = _Box(x + gutter_w[c], y, plan.width, plan.height)
            cells.append(cell)
            x, y = cell.right, cell.bottom + GAP_Y
        gutter_x.append(x)
        return cells, gutter_x

    def _draw_cell(self, c, cell, plan):
        dead = c not in set(self.g.live_cells)  # no path to the output: dropped
        colour = UNUSED_INK if dead else CELL_COLOURS[c % len(CELL_COLOURS)]
        self._rect(cell, UNUSED_FILL if dead else CELL_FILL, colour,
                   cls="cell unused" if dead else "cell", width=2.0, radius=10,
                   background=True, dashed=dead)
        self._text(cell.x + 10, cell.y + 4 + CELL_TITLE_H / 2,
                   self.names[len(self.g.inputs) + c] + (" (unused)" if dead else ""),
                   colour=colour, anchor="start", cls="cell-name")
        plan.draw(self, cell.x, cell.y)

    def _draw_edges(self, routes, nodes, cells, plans, out_box, gutter_x):
        ends = []
        for src, target, slot, count, gutter in routes:
            if target == "output":
                ends.append((out_box.x, out_box.slot(slot, count), INK))
            else:
                ends.append((cells[target].x + PAD,
                             cells[target].y + plans[target].port_y(slot),
                             CELL_COLOURS[target % len(CELL_COLOURS)]))
        lanes = {}
        for gutter in range(len(gutter_x)):
            members = [r for r, route in enumerate(routes) if route[4] == gutter]
            order = _order_lanes([(nodes[routes[r][0]].cy, ends[r][1]) for r in members])
            lanes.update({r: order[i] for i, r in enumerate(members)})
        for r, (src, target, slot, count, gutter) in enumerate(routes):
            start, (end_x, end_y, colour) = nodes[src], ends[r]
            lane_x = _lane_x(gutter_x[gutter], lanes[r])
            self._line([(start.right, start.cy), (lane_x, start.cy), (lane_x, end_y),
                        (end_x, end_y)], colour, cls="edge")

    def _legend(self, bottom):
        """Adds the legend when something is unused; returns the new bottom."""
        g = self.g
        if len(g.used_inputs) < len(g.inputs) or len(g.live_cells) < g.num_cells:
            bottom += 14
            self._text(MARGIN, bottom + SMALL_SIZE / 2,
                       "grey, dashed: features and cells with no path to the output",
                       size=SMALL_SIZE, colour=UNUSED_INK, anchor="start", cls="legend")
            bottom += SMALL_SIZE
        return bottom

    def _inner_labels(self, c):
        h1, h2 = self.g.cell_inputs(c)
        return f"x: {self.names[h1]}", f"y: {self.names[h2]}"


def _gutter_width(lanes):
    # Room left of the first lane, between lanes, and right of the last lane
    # for the arrow head.
    return 12 + LANE * max(lanes - 1, 0) + 24


def _lane_x(gutter_left, lane):
    return gutter_left + 12 + LANE * lane


def _order_lanes(segments):
    """Lane (0 = leftmost) per vertical segment, with few line crossings.

    A segment (y_in, y_out) arrives from the left at y_in and leaves to the
    right at y_out. Its leaving line crosses every lane to its right whose span
    holds y_out, its arriving line every lane to its left whose span holds y_in.
    Exhaustive for up to 6 segments, else adjacent swaps from a nested order.
    """
    count = len(segments)
    spans = [tuple(sorted(s)) for s in segments]

    def crossings(order):
        total = 0
        for a in range(count):
            e = order[a]
            for b in range(a + 1, count):
                f = order[b]
                total += spans[f][0] < segments[e][1] < spans[f][1]
                total += spans[e][0] < segments[f][0] < spans[e][1]
        return total

    if count <= 6:
        best = min(itertools.permutations(range(count)), key=crossings)
    else:
        best = sorted(range(count), key=lambda i: spans[i][0] - spans[i][1])
        improved = True
        while improved:
            improved = False
            for a in range(count - 1):
                trial = list(best)
                trial[a], trial[a + 1] = trial[a + 1], trial[a]
                if crossings(trial) < crossings(best):
                    best, improved = trial, True
    lanes = [0] * count
    for lane, segment in enumerate(best):
        lanes[segment] = lane
    return lanes


class _CellPlan:
    """The inner DAG of one cell, with coordinates relative to the cell box.

    Columns: 0 holds x (top row) and y (bottom row); 1..m the steps (middle
    row); m+1 the concat node (middle row). Gutter j lies right of column j.
    """

    def __init__(self, step, xy_labels, fonts):
        self.step = step
        self.xy_labels = xy_labels
        m = self.m = len(step.inner_steps)
        self.concat_h = max(STEP_H, 11 * (len(step.inner_concat) + 1))
        widths = ([max(fonts.width(t) for t in xy_labels) + 18]
                  + [max(max(fonts.width(f"Step_{s + 1}"), fonts.width(op, SMALL_SIZE))
                         for s, op in enumerate(step.inner_steps)) + 22] * m
                  + [fonts.width("concat") + 18])
        band, segments = self._route(self._inner_edges())
        gutter_w = [_gutter_width(sum(seg[0] == j for seg in segments))
                    for j in range(m + 1)]
        self._place_columns(widths, gutter_w, band)
        self._assign_lanes(segments, widths)

    def _inner_edges(self):
        """(source, column, slot, slot count) of the edges into each step and
        into concat; node 0 = x, 1 = y, 2 + s = step s (column s + 1). Slots
        run top to bottom by source row."""
        step, m = self.step, self.m
        row = {0: 0, 1: 2}
        edges = []
        for s in range(m):
            srcs = sorted((step.inner_edges[2 * s][1], step.inner_edges[2 * s + 1][1]),
                          key=lambda v: (row.get(v, 1), v))
            edges += [(src, s + 1, i, 2) for i, src in enumerate(srcs)]
        concat = sorted(step.inner_concat)
        edges += [(src, m + 1, i, len(concat)) for i, src in enumerate(concat)]
        return edges

    def _route(self, edges):
        """Sets self.routes; returns the band lane counts and the vertical
        segments (gutter, route, "exit" | "enter").

        An edge from a step that skips a column detours through the band
        above the middle row (into a step) or below it (into concat).
        """
        self.routes, band, segments = [], {"up": 0, "down": 0}, []
        for r, (src, col, slot, count) in enumerate(edges):
            route = {"src": src, "col": col, "slot": slot, "count": count}
            src_col = 0 if src < 2 else src - 1
            if src >= 2 and src_col != col - 1:
                side = "down" if col == self.m + 1 else "up"
                route["band"] = (side, band[side])
                band[side] += 1
                segments.append((src_col, r, "exit"))
            segments.append((col - 1, r, "enter"))
            self.routes.append(route)
        return band, segments

    def _place_columns(self, widths, gutter_w, band):
        """Column x positions, row y positions and the cell's size."""
        band_h = {side: 2 * 9 + LANE * max(n - 1, 0) for side, n in band.items()}
        self.col_x, self.col_w = [PAD], widths
        for j in range(1, self.m + 2):
            self.col_x.append(self.col_x[j - 1] + widths[j - 1] + gutter_w[j - 1])
        self.width = self.col_x[-1] + widths[-1] + PAD
        mid_h = max(STEP_H, self.concat_h)
        self.y_top = CELL_TITLE_H + PAD + NODE_H / 2
        self.y_mid = self.y_top + NODE_H / 2 + max(band_h["up"], BAND_MIN) + mid_h / 2
        self.y_bot = self.y_mid + mid_h / 2 + max(band_h["down"], BAND_MIN) + NODE_H / 2
        self.height = self.y_bot + NODE_H / 2 + PAD

    def _assign_lanes(self, segments, widths):
        """Lanes, from the relative geometry (a shift of the cell changes none)."""
        for route in self.routes:
            src = self.node_box(route["src"], 0, 0)
            route["start_y"] = src.cy
            route["end_y"] = self._target_box(route, 0, 0).slot(route["slot"], route["count"])
            if "band" in route:
                side, i = route["band"]
                route["band_y"] = (self.y_top + NODE_H / 2 + 9 + LANE * i if side == "up"
                                   else self.y_bot - NODE_H / 2 - 9 - LANE * i)
        for j in range(self.m + 1):
            members = [seg for seg in segments if seg[0] == j]
            spans = []
            for _, r, kind in members:
                route = self.routes[r]
                if kind == "exit":
                    spans.append((route["start_y"], route["band_y"]))
                else:
                    spans.append((route.get("band_y", route["start_y"]), route["end_y"]))
            for (_, r, kind), lane in zip(members, _order_lanes(spans)):
                self.routes[r][kind + "_x"] = _lane_x(self.col_x[j] + widths[j], lane)

    def port_y(self, slot):
        """Relative y where the cell's input h1 (slot 0, x) or h2 (y) enters."""
        return self.y_top if slot == 0 else self.y_bot

    def node_box(self, node, ox, oy):
        """Box of node 0 (x), 1 (y), 2 + s (step s) or "concat", cell at (ox, oy)."""
        if node in (0, 1):
            return _Box(ox + PAD, oy + (self.y_top if node == 0 else self.y_bot) - NODE_H / 2,
                        self.col_w[0], NODE_H)
        if node == "concat":
            return _Box(ox + self.col_x[-1], oy + self.y_mid - self.concat_h / 2,
                        self.col_w[-1], self.concat_h)
        return _Box(ox + self.col_x[node - 1], oy + self.y_mid - STEP_H / 2,
                    self.col_w[node - 1], STEP_H)

    def _target_box(self, route, ox, oy):
        node = "concat" if route["col"] == self.m + 1 else route["col"] + 1
        return self.node_box(node, ox, oy)

    def draw(self, layout, ox, oy):
        for node in (0, 1):
            box = self.node_box(node, ox, oy)
            layout._rect(box, XY_FILL, "#7d93b8", cls="inner-input", radius=4)
            layout._text(box.x + box.w / 2, box.cy, self.xy_labels[node],
                         cls="inner-input-name")
        for s, op in enumerate(self.step.inner_steps):
            box = self.node_box(2 + s, ox, oy)
            layout._rect(box, STEP_FILL, "#c08a1a", cls="step", radius=4)
            layout._text(box.x + box.w / 2, box.y + 13, f"Step_{s + 1}", cls="step-name")
            layout._text(box.x + box.w / 2, box.y + STEP_H - 13, op, size=SMALL_SIZE,
                         colour="#7a4f00", cls="op")
        box = self.node_box("concat", ox, oy)
        layout._rect(box, CONCAT_FILL, "#8a8a8a", cls="concat", radius=4)
        layout._text(box.x + box.w / 2, box.cy, "concat", size=SMALL_SIZE, cls="concat-name")

        for r in self.routes:
            start_x = self.node_box(r["src"], ox, oy).right
            start_y, end_y = oy + r["start_y"], oy + r["end_y"]
            enter_x = ox + r["enter_x"]
            pts = [(start_x, start_y)]
            if "band" in r:
                band_y, exit_x = oy + r["band_y"], ox + r["exit_x"]
                pts += [(exit_x, start_y), (exit_x, band_y), (enter_x, band_y)]
            else:
                pts.append((enter_x, start_y))
            pts += [(enter_x, end_y), (self._target_box(r, ox, oy).x, end_y)]
            layout._line(pts, INNER_INK, width=1.5, cls="inner-edge")


def _simplify(points):
    """Drops repeated points and the middle of collinear runs."""
    out = []
    for p in points:
        p = (round(p[0], 1), round(p[1], 1))
        if out and p == out[-1]:
            continue
        if len(out) >= 2 and (out[-2][0] == out[-1][0] == p[0]
                              or out[-2][1] == out[-1][1] == p[1]):
            out[-1] = p
            continue
        out.append(p)
    return out


def _arrow_head(points):
    (x0, y0), (x1, y1) = points[-2], points[-1]
    dx, dy = x1 - x0, y1 - y0
    norm = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / norm, dy / norm
    bx, by = x1 - ARROW * 1.4 * ux, y1 - ARROW * 1.4 * uy
    return [(x1, y1), (bx - ARROW * 0.6 * uy, by + ARROW * 0.6 * ux),
            (bx + ARROW * 0.6 * uy, by - ARROW * 0.6 * ux)]


# -------------------------------------------------------------------- writers


def _fmt(v):
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _write_svg(shapes, width, height, path):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" '
           f'font-family="Helvetica, Arial, sans-serif">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']
    for kind, s in shapes:
        cls = f' class="{escape(s["cls"])}"' if s.get("cls") else ""
        if kind == "rect":
            dash = ' stroke-dasharray="5,3"' if s["dashed"] else ""
            out.append(
                f'<rect{cls} x="{_fmt(s["x"])}" y="{_fmt(s["y"])}" width="{_fmt(s["w"])}" '
                f'height="{_fmt(s["h"])}" rx="{s["radius"]}" fill="{s["fill"]}" '
                f'stroke="{s["stroke"]}" stroke-width="{s["width"]}"{dash}/>')
        elif kind == "line":
            pts = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in s["points"])
            head = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in _arrow_head(s["points"]))
            out.append(f'<g{cls}><polyline points="{pts}" fill="none" '
                       f'stroke="{s["colour"]}" stroke-width="{s["width"]}" '
                       f'stroke-linejoin="round"/>'
                       f'<polygon points="{head}" fill="{s["colour"]}"/></g>')
        else:
            anchor = "middle" if s["anchor"] == "middle" else "start"
            out.append(f'<text{cls} x="{_fmt(s["x"])}" y="{_fmt(s["y"])}" '
                       f'font-size="{s["size"]}" fill="{s["colour"]}" '
                       f'text-anchor="{anchor}" dy="0.35em">'
                       f'{escape(s["text"])}</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def _dashed_outline(draw, box, radius, colour, width, dash=5, gap=3):
    x0, y0, x1, y1 = box
    sides = [((x0 + radius, y0), (x1 - radius, y0)), ((x0 + radius, y1), (x1 - radius, y1)),
             ((x0, y0 + radius), (x0, y1 - radius)), ((x1, y0 + radius), (x1, y1 - radius))]
    for (ax, ay), (bx, by) in sides:
        length = abs(bx - ax) + abs(by - ay)
        ux, uy = (bx - ax) / max(length, 1e-6), (by - ay) / max(length, 1e-6)
        t = 0.0
        while t < length:
            u = min(t + dash, length)
            draw.line([(ax + ux * t, ay + uy * t), (ax + ux * u, ay + uy * u)],
                      fill=colour, width=width)
            t += dash + gap


def _write_png(shapes, width, height, path, fonts):
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for kind, s in shapes:
        if kind == "rect":
            box = [s["x"], s["y"], s["x"] + s["w"], s["y"] + s["h"]]
            width = max(1, round(s["width"]))
            if s["dashed"]:
                draw.rounded_rectangle(box, radius=s["radius"], fill=s["fill"])
                _dashed_outline(draw, box, s["radius"], s["stroke"], width)
            else:
                draw.rounded_rectangle(box, radius=s["radius"], fill=s["fill"],
                                       outline=s["stroke"], width=width)
        elif kind == "line":
            draw.line(s["points"], fill=s["colour"], width=max(1, round(s["width"])),
                      joint="curve")
            draw.polygon(_arrow_head(s["points"]), fill=s["colour"])
        else:
            font = fonts.get(s["size"])
            anchor = "mm" if s["anchor"] == "middle" else "lm"
            try:
                draw.text((s["x"], s["y"]), s["text"], fill=s["colour"], font=font,
                          anchor=anchor)
            except ValueError:  # bitmap fonts take no anchor
                left, top, right, bottom = draw.textbbox((0, 0), s["text"], font=font)
                x = s["x"] - (right - left) / 2 if anchor == "mm" else s["x"]
                draw.text((x, s["y"] - (bottom + top) / 2), s["text"], fill=s["colour"],
                          font=font)
    image.save(path)
