"""Open Clip Art loader on a small generated /usr/share/openclipart-like tree."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from ssnas_tf.data.base import DataError
from ssnas_tf.data.clipart import (INSTALL_COMMAND, label_word_pattern,
                                   load_clipart, parse_svg_metadata)

OLD_CC = "http://web.resource.org/cc/"
NEW_CC = "http://creativecommons.org/ns#"


def _svg(title, description="", keywords=(), cc=OLD_CC, alt_title=False):
    items = "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
    title_xml = (f'<rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li>'
                 f"</rdf:Alt>" if alt_title else title)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
  <metadata>
    <rdf:RDF xmlns:cc="{cc}" xmlns:dc="http://purl.org/dc/elements/1.1/"
             xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
      <cc:Work rdf:about="">
        <dc:title>{title_xml}</dc:title>
        <dc:description>{description}</dc:description>
        <dc:subject><rdf:Bag>{items}<rdf:li></rdf:li></rdf:Bag></dc:subject>
        <dc:creator><cc:Agent><dc:title>Some Artist</dc:title></cc:Agent>
        </dc:creator>
      </cc:Work>
    </rdf:RDF>
  </metadata>
  <rect width="10" height="10"/>
</svg>
"""


def _add(root, rel, svg=None, png=None):
    """Writes root/svg/<rel>.svg and root/png/<rel>.png."""
    for tree, content in (("svg", svg), ("png", png)):
        if content is None:
            continue
        path = root / tree / f"{rel}.{tree}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if tree == "svg":
            path.write_text(content)
        else:
            content.save(path)


def _solid(size=(12, 12), colour=(0, 128, 0, 255)):
    return Image.new("RGBA", size, colour)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "openclipart"
    half = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # transparent -> white
    half.paste((255, 0, 0, 255), (0, 0, 10, 20))
    _add(root, "food/apple",
         _svg("Red Apple", "a juicy fruit from the food market",
              ["fruit", "food", "Apple", "red"]), half)
    _add(root, "food/fruits/banana",
         _svg("Banana bunch", "", ["Fruit", "banana", "yellow"]), _solid())
    _add(root, "food/fruitonly", _svg("Fruits", "", ["fruit"]), _solid())
    _add(root, "animals/cat",
         _svg("Sleeping cat", "an animal resting Pet", ["animal", "cat, pet"]),
         _solid())
    _add(root, "animals/dog",
         _svg("Dog", "", ["animal", "dog", "pet"], cc=NEW_CC, alt_title=True),
         _solid())
    _add(root, "computer/mouse", _svg("Computer mouse", "", ["computer",
                                                             "mouse"]),
         _solid())
    # Every kind of skip, once each.
    os.symlink("apple.svg", root / "svg/food/apple_copy.svg")
    os.symlink("apple.png", root / "png/food/apple_copy.png")
    _add(root, "food/pear", _svg("Pear", "", ["fruit"]))
    os.symlink("apple.png", root / "png/food/pear.png")
    _add(root, "animals/big", _svg("Big cat", "", ["pet"]), _solid((100, 100)))
    noise = np.random.default_rng(0).integers(0, 256, (60, 60, 3), np.uint8)
    _add(root, "animals/noise", _svg("Noise", "", ["pet"]),
         Image.fromarray(noise))
    _add(root, "computer/broken", "<svg><metadata>", _solid())
    _add(root, "food/nopng", _svg("Lost", "", ["fruit"]))
    return root


OPTIONS = {"num_labels": 3, "image_size": (8, 8), "max_pixels": 5000,
           "max_file_bytes": 6000}
SKIPS = {"svg_symlink": 1, "png_symlink": 1, "png_too_many_pixels": 1,
         "png_too_many_bytes": 1, "svg_unparsable": 1, "png_missing": 1}


def _assert_no_label_words(texts, words):
    for text in texts:
        for word in words:
            for form in (word, word + "s", word.rstrip("s")):
                assert not re.search(rf"\b{form}\b", text, re.IGNORECASE), (
                    f"label word {form!r} left in {text!r}")


def test_keywords_target(tree, tmp_path, capsys):
    data = load_clipart(tree, cache_dir=tmp_path / "cache", **OPTIONS)
    # "food", "computer" and "animal(s)" restate categories: not labels.
    assert data.label_names == ("fruit", "pet", "apple")
    assert data.multilabel and data.labels.dtype == np.float32
    assert data.extras["paths"] == ["animals/cat.svg", "animals/dog.svg",
                                    "food/apple.svg", "food/fruits/banana.svg"]
    np.testing.assert_array_equal(
        data.labels, [[0, 1, 0], [0, 1, 0], [1, 0, 1], [1, 0, 0]])
    assert list(data.inputs["text"]) == [
        "Sleeping cat an resting", "Dog", "Red a juicy from the market",
        "Banana bunch"]
    _assert_no_label_words(data.inputs["text"],
                           ["fruit", "pet", "apple", "food", "animal",
                            "computer"])
    counts = data.extras["counts"]
    assert {k: counts[k] for k in SKIPS} == SKIPS
    assert (counts["svg_files"], counts["no_label"], counts["empty_text"],
            counts["kept"]) == (12, 1, 1, 4)
    assert data.splits == {} and data.kinds == {"image": "image",
                                                 "text": "text"}
    out = capsys.readouterr().out
    assert "clipart: kept 4 of 12 SVG files" in out
    assert "svg_symlink=1" in out and "png_too_many_pixels=1" in out


def test_images_composited_over_white(tree, tmp_path):
    data = load_clipart(tree, cache_dir=tmp_path / "cache", verbose=False,
                        **OPTIONS)
    images = data.inputs["image"]
    assert images.shape == (4, 8, 8, 3) and images.dtype == np.uint8
    apple = images[data.extras["paths"].index("food/apple.svg")]
    assert tuple(apple[4, 0]) == (255, 0, 0)
    assert tuple(apple[4, 7]) == (255, 255, 255)
    banana = images[data.extras["paths"].index("food/fruits/banana.svg")]
    assert tuple(banana[4, 4]) == (0, 128, 0)


def test_category_target(tree, tmp_path):
    data = load_clipart(tree, target="category", cache_dir=tmp_path / "cache",
                        verbose=False, **OPTIONS)
    assert data.label_names == ("animals", "computer", "food")
    assert not data.multilabel and data.labels.dtype == np.int64
    assert data.num_samples == 6  # "Fruits" is no category name: kept
    assert list(data.labels) == [0, 0, 1, 2, 2, 2]
    _assert_no_label_words(data.inputs["text"],
                           ["animal", "computer", "food"])
    assert "mouse" in data.inputs["text"]
    subset = load_clipart(tree, target="category", categories=["food", "animals"],
                          cache_dir=tmp_path / "cache", verbose=False,
                          **OPTIONS)
    assert subset.label_names == ("animals", "food")
    assert subset.extras["counts"]["other_category"] == 1
    with pytest.raises(DataError, match="unknown categories"):
        load_clipart(tree, target="category", categories=["nope"],
                     cache_dir=tmp_path / "cache", verbose=False, **OPTIONS)


def test_cache_is_used_on_second_load(tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_clipart(tree, cache_dir=cache, verbose=False, **OPTIONS)
    assert [p.suffix for p in cache.iterdir()] == [".npz"]  # no temp file left

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a PNG although the cache holds it")

    monkeypatch.setattr(Image, "open", no_decoding)
    second = load_clipart(tree, cache_dir=cache, verbose=False, **OPTIONS)
    np.testing.assert_array_equal(first.inputs["image"], second.inputs["image"])
    assert list(first.inputs["text"]) == list(second.inputs["text"])
    assert first.extras["counts"] == second.extras["counts"]
    # The other target reads the same cache; other image options do not.
    load_clipart(tree, target="category", cache_dir=cache, verbose=False,
                 **OPTIONS)
    with pytest.raises(AssertionError, match="decoded a PNG"):
        load_clipart(tree, cache_dir=cache, verbose=False,
                     **{**OPTIONS, "image_size": (4, 4)})


def test_cache_invalidated_when_tree_changes(tree, tmp_path):
    cache = tmp_path / "cache"
    load_clipart(tree, cache_dir=cache, verbose=False, **OPTIONS)
    _add(tree, "animals/hamster", _svg("Hamster", "", ["pet"]), _solid())
    data = load_clipart(tree, cache_dir=cache, verbose=False, **OPTIONS)
    assert "animals/hamster.svg" in data.extras["paths"]
    assert len(list(cache.iterdir())) == 2


def test_parse_svg_metadata(tree):
    assert parse_svg_metadata(tree / "svg/animals/dog.svg") == (
        "Dog", "", ["animal", "dog", "pet"])
    assert parse_svg_metadata(tree / "svg/animals/cat.svg")[2] == [
        "animal", "cat", "pet"]


def test_label_word_pattern_forms():
    pattern = label_word_pattern(["signs_and_symbols", "stop sign", "berry"])
    text = ("Signs and symbols: a STOP-sign, signs, berries, sign_post, "
            "symbol, and handsign, stopwatch")
    assert " ".join(pattern.sub(" ", text).split()) == (
        ": a , , , _post, , and handsign, stopwatch")


def test_missing_tree_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match=re.escape(INSTALL_COMMAND)):
        load_clipart(tmp_path / "missing")
    (tmp_path / "half" / "png").mkdir(parents=True)
    with pytest.raises(DataError, match=r"svg not found.*" +
                       re.escape(INSTALL_COMMAND)):
        load_clipart(tmp_path / "half")


def test_keywords_recounted_after_empty_texts(tmp_path):
    root = tmp_path / "openclipart"
    for i in range(3):  # the most frequent keyword, but only in bare titles
        _add(root, f"recreation/card{i}", _svg("Card", "", ["card"]), _solid())
    for i in range(2):
        _add(root, f"recreation/ball{i}", _svg("Blue ball", "", ["ball"]),
             _solid())
    _add(root, "recreation/box", _svg("Red box", "", ["box"]), _solid())
    data = load_clipart(root, num_labels=1, image_size=(4, 4), use_cache=False,
                        verbose=False)
    assert data.label_names == ("ball",)
    assert data.num_samples == 2 and list(data.inputs["text"]) == ["Blue", "Blue"]
    assert data.extras["counts"]["empty_text"] == 0
    assert data.extras["counts"]["no_label"] == 4
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("keep_aspect, needle", [(True, "white 8x8 canvas"),
                                                 (False, "resized to 8x8")])
def test_preprocessing_a_client_must_repeat_is_stated(tree, tmp_path, keep_aspect, needle):
    data = load_clipart(tree, cache_dir=tmp_path / "cache", verbose=False,
                        **{**OPTIONS, "keep_aspect": keep_aspect})
    steps = data.extras["preprocessing"]
    assert "alpha-composited over opaque white" in steps["image"][0]
    assert needle in steps["image"][1]
    assert "title and description" in steps["text"][0]
