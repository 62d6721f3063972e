"""Open Clip Art: clip-art images with their titles, multi-label keywords.

Reads the Debian packages openclipart-png and openclipart-svg (public domain):
PNGs under `<root>/png/<category>/...` and their SVG sources at the same relative
paths under `<root>/svg/`. The SVG metadata gives the text (`<dc:title>` and
`<dc:description>`) and the keywords (`<dc:subject>` `<rdf:li>` items); the PNG
gives the image. Keywords often repeat the title or the category, so every label
word is cut out of the text: the text input never names its label.

Decoding the ~6,900 PNGs takes a while, so the decoded images and the parsed
metadata are cached in one .npz per (tree contents, image options); the targets
are rebuilt from that cache on every load, so both targets share it. One
process decodes while the others wait on a `FileLock` beside the cache file.

Length: over 500 lines because the dataset has three jobs that only it needs
(scanning and decoding the two Debian trees, their on-disk cache, and cutting
label words out of the text so that the text never names its label); each is
a short section below, and no other loader shares them.
"""

import collections
import hashlib
import json
import os
import re
import struct
import tempfile
import time
import xml.etree.ElementTree as ET

import numpy as np

from ssnas_tf.data.base import DataError, MultimodalDataset
from ssnas_tf.filelock import FileLock

DEFAULT_ROOT = "/usr/share/openclipart"
INSTALL_COMMAND = "apt-get install -y openclipart-png openclipart-svg"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "ssnas_tf", "clipart")
DC = "{http://purl.org/dc/elements/1.1/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
# The cc namespace differs between tools (web.resource.org/cc/ in the packaged
# files, creativecommons.org/ns# in newer Inkscape), so <cc:Work> is found by
# its local name.
_WORK = "Work"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CACHE_VERSION = 1
_PROGRESS_EVERY = 1000
# Parts of multi-word labels too common to remove from text on their own.
_STOPWORDS = frozenset({"a", "an", "and", "at", "by", "for", "in", "of", "on",
                        "or", "the", "to", "with"})


def load_clipart(data_dir=None, *, target="keywords", num_labels=20,
                 categories=None, image_size=(64, 64), keep_aspect=True,
                 max_file_bytes=8_000_000, max_pixels=16_000_000,
                 exclude_category_keywords=True, exclude_keywords=(),
                 cache_dir=None, use_cache=True, verbose=True):
    """Loads Open Clip Art as an image + text dataset.

    Files are skipped, and counted by reason, when the SVG or the PNG is a
    symbolic link (duplicates of other items), the PNG is missing, larger than
    `max_file_bytes`, has more than `max_pixels` in its header (some are over
    200 megapixels: read from the IHDR chunk, never decoded) or cannot be
    decoded, or the SVG does not parse. Items are then dropped, and counted,
    when they have no label or no text left once label words are removed.

    Label words never reach the text: every target name and every category
    name (as a phrase with `_`, `-` or spaces, each of its words of 3+ letters,
    and simple singular/plural forms) is removed case-insensitively at word
    boundaries from `title + " " + description`.

    Args:
        data_dir: the Open Clip Art root holding `png/` and `svg/`.
            Defaults to None (`/usr/share/openclipart`).
        target: `"keywords"` (multi-label, float32 (N, K) multi-hot over the
            `num_labels` most frequent keywords) or `"category"` (single-label,
            the top-level folder). Defaults to `"keywords"`.
        num_labels: number of keywords kept as labels: the most frequent
            over the items that pass the file checks, counting an item only if
            its text keeps a letter or digit once that keyword and the
            category names are removed (ties broken alphabetically).
            Defaults to 20.
        categories: category target only: restrict to these folder names.
            Defaults to None (every category with an item).
        image_size: (height, width) of the images. Defaults to (64, 64).
        keep_aspect: fit each image inside `image_size` and pad with white,
            rather than stretch it. Defaults to True.
        max_file_bytes: skip PNGs larger than this on disk.
            Defaults to 8_000_000 (none of the packaged files is larger).
        max_pixels: skip PNGs whose header gives more pixels than this.
            Defaults to 16_000_000 (17 packaged files are larger).
        exclude_category_keywords: keyword target only: do not use keywords
            that equal a category name or its singular/plural (e.g.
            "computer", "food", "animal", "unsorted") as labels. They restate
            the folder, which `target="category"` already covers, and would
            crowd out the descriptive keywords. Defaults to True.
        exclude_keywords: keywords never used as labels, e.g. ("hash",
            "magick") for the packaging tags. Defaults to ().
        cache_dir: where the decoded images are cached. Defaults to None
            (`~/.cache/ssnas_tf/clipart`).
        use_cache: read and write the cache. Defaults to True.
        verbose: print progress and the skip summary. Defaults to True.

    Returns:
        A `MultimodalDataset` named "clipart" with modalities "image" (uint8
        (N, H, W, 3) RGB, transparency composited over white) and "text"
        (object (N,) of str), no fixed splits, and `extras` with `paths`
        (relative SVG paths), `categories`, `keywords` (each item's own),
        `counts` (files seen, skips and drops by reason) and `preprocessing`
        (what a client must repeat, see `ssnas_tf.serving.preprocessing`).

    Raises:
        DataError: the png or svg tree is missing (the message gives the
            `apt-get` command), a bad option, or no item left.

    Example:
        >>> data = load_clipart(target="category")  # doctest: +SKIP
        >>> data.inputs["image"].shape  # doctest: +SKIP
        (6830, 64, 64, 3)
    """
    root = _check_root(data_dir)
    if target not in ("keywords", "category"):
        raise DataError(
            f"clipart: target must be 'keywords' or 'category', got {target!r}")
    image_size = tuple(int(s) for s in image_size)
    start = time.time()
    items, source = _cached_items(
        root, image_size, keep_aspect, max_file_bytes, max_pixels,
        cache_dir, use_cache, verbose)
    counts = collections.Counter(items["counts"])
    data = _build(items, counts, target, num_labels, categories,
                  exclude_category_keywords, exclude_keywords)
    data.extras["preprocessing"] = preprocessing_steps(image_size, keep_aspect)
    if verbose:
        _print_summary(data, counts, source, time.time() - start)
    return data


def _check_root(data_dir):
    root = os.path.abspath(os.fspath(data_dir or DEFAULT_ROOT))
    for tree in ("png", "svg"):
        if not os.path.isdir(os.path.join(root, tree)):
            raise DataError(
                f"clipart: {os.path.join(root, tree)} not found; install Open "
                f"Clip Art with `{INSTALL_COMMAND}` (Debian/Ubuntu, as root) "
                f"or pass data_dir=<folder holding png/ and svg/>")
    return root


def _print_summary(data, counts, source, seconds):
    skips = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())
                      if k not in ("svg_files", "kept"))
    print(f"clipart: kept {data.num_samples} of {counts['svg_files']} SVG "
          f"files ({source}, {seconds:.1f}s); skipped/dropped: {skips or 'none'}")


# ------------------------------------------------------------ scan + decode


def _cached_items(root, image_size, keep_aspect, max_file_bytes, max_pixels,
                  cache_dir, use_cache, verbose):
    """Parsed metadata and decoded images of the items passing the file checks."""
    key = {"version": _CACHE_VERSION, "root": root,
           "image_size": list(image_size), "keep_aspect": bool(keep_aspect),
           "max_file_bytes": int(max_file_bytes), "max_pixels": int(max_pixels),
           "tree": _fingerprint(root)}
    digest = hashlib.sha256(
        json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache_dir = os.path.expanduser(cache_dir or DEFAULT_CACHE_DIR)
    cache_path = os.path.join(cache_dir, f"clipart_{digest}.npz")
    if not use_cache:
        return _scan(root, image_size, keep_aspect, max_file_bytes, max_pixels,
                     verbose), f"decoded from {root}"
    items = _read_cache(cache_path, verbose)
    if items is None:
        # One process decodes, the others wait for it and read its cache.
        os.makedirs(cache_dir, exist_ok=True)
        with FileLock(cache_path + ".lock"):
            items = _read_cache(cache_path, verbose)
            if items is None:
                items = _scan(root, image_size, keep_aspect, max_file_bytes,
                              max_pixels, verbose)
                _write_cache(cache_path, items)
                return items, f"decoded from {root}"
    return items, f"cache {cache_path}"


def _read_cache(cache_path, verbose):
    """The cached items, or None when the cache is absent or unreadable."""
    if not os.path.isfile(cache_path):
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as cached:
            items = json.loads(str(cached["meta"]))
            items["images"] = cached["images"]
        return items
    except (OSError, ValueError, KeyError) as error:
        if verbose:
            print(f"clipart: ignoring unreadable cache {cache_path}: {error}")
        return None


def _fingerprint(root):
    """A hash of every file's path, size, mtime and link status under root."""
    digest = hashlib.sha256()
    for tree in ("svg", "png"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, tree)):
            dirnames.sort()
            for name in sorted(filenames):
                stat = os.lstat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}:{stat.st_size}:"
                              f"{stat.st_mtime_ns}:{stat.st_mode}\n".encode())
    return digest.hexdigest()


def _write_cache(path, items):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = {k: v for k, v in items.items() if k != "images"}
    # Temp file in the same folder + os.replace: readers never see half a file.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, images=items["images"],
                                meta=np.array(json.dumps(meta)))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _svg_files(svg_root):
    for dirpath, dirnames, filenames in os.walk(svg_root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(".svg"):
                yield os.path.join(dirpath, name)


def _scan(root, image_size, keep_aspect, max_file_bytes, max_pixels, verbose):
    svg_root, png_root = os.path.join(root, "svg"), os.path.join(root, "png")
    counts = collections.Counter()
    items = {"paths": [], "categories": [], "titles": [], "descriptions": [],
             "keywords": []}
    images = []
    decode_errors = _decode_errors()
    for svg_path in _svg_files(svg_root):
        counts["svg_files"] += 1
        if verbose and counts["svg_files"] % _PROGRESS_EVERY == 0:
            print(f"clipart: {counts['svg_files']} SVG files read, "
                  f"{len(images)} kept")
        rel = os.path.relpath(svg_path, svg_root)
        png_path = os.path.join(png_root, rel[:-4] + ".png")
        reason = _file_problem(svg_path, png_path, max_file_bytes, max_pixels)
        if reason is None:
            try:
                title, description, keywords = parse_svg_metadata(svg_path)
            except (ET.ParseError, OSError, UnicodeDecodeError):
                reason = "svg_unparsable"
        if reason is None:
            try:
                image = _decode_png(png_path, image_size, keep_aspect)
            except decode_errors:
                reason = "png_undecodable"
        if reason is not None:
            counts[reason] += 1
            continue
        images.append(image)
        items["paths"].append(rel.replace(os.sep, "/"))
        items["categories"].append(rel.split(os.sep)[0])
        items["titles"].append(title)
        items["descriptions"].append(description)
        items["keywords"].append(keywords)
    items["images"] = (np.stack(images) if images else
                       np.zeros((0,) + image_size + (3,), np.uint8))
    items["counts"] = dict(counts)
    return items


def _file_problem(svg_path, png_path, max_file_bytes, max_pixels):
    """The skip reason for this item's files, or None."""
    if os.path.islink(svg_path):
        return "svg_symlink"
    if os.path.islink(png_path):
        return "png_symlink"
    if not os.path.isfile(png_path):
        return "png_missing"
    if os.path.getsize(png_path) > max_file_bytes:
        return "png_too_many_bytes"
    size = png_header_size(png_path)
    if size is None:
        return "png_bad_header"
    if size[0] * size[1] > max_pixels:
        return "png_too_many_pixels"
    return None


def png_header_size(path):
    """(width, height) from a PNG's IHDR chunk without decoding, or None."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def _decode_errors():
    from PIL import Image
    # What PIL raises on corrupt or truncated files (PNG chunk errors are
    # SyntaxError); anything else is a bug and propagates.
    return (OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError)


def preprocessing_steps(image_size, keep_aspect):
    """What a client must repeat on a PNG and an SVG (extras["preprocessing"])."""
    height, width = image_size
    if keep_aspect:
        fit = (f"scaled by min({width}/w, {height}/h) (rounded, at least 1 pixel) with "
               f"PIL Lanczos (reducing_gap=3.0) and pasted centred on a white "
               f"{width}x{height} canvas (offset floor-divided)")
    else:
        fit = f"resized to {width}x{height} with PIL Lanczos (reducing_gap=3.0)"
    return {
        "image": ["the PNG converted to RGBA and alpha-composited over opaque "
                  "white, then converted to RGB",
                  f"{fit}; uint8 ({height}, {width}, 3)"],
        "text": ["the SVG's Dublin Core title and description joined with one "
                 "space (label words are removed only from training data, to "
                 "keep labels out of the text; clients send the text as is)"],
    }


def _decode_png(path, image_size, keep_aspect):
    from PIL import Image

    height, width = image_size
    with Image.open(path) as img:
        img = img.convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img).convert("RGB")
    if keep_aspect:
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)),
                max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        canvas.paste(img, ((width - size[0]) // 2, (height - size[1]) // 2))
        img = canvas
    else:
        img = img.resize((width, height), Image.Resampling.LANCZOS,
                         reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def parse_svg_metadata(path):
    """Title, description and keywords from an SVG's Dublin Core metadata.

    Args:
        path: the SVG file.

    Returns:
        `(title, description, keywords)`: whitespace-normalised strings ("" when
        absent) and a list of distinct lower-case keywords in file order
        (`<rdf:li>` items, split at commas and semicolons).

    Raises:
        xml.etree.ElementTree.ParseError: the file is not well-formed XML.
    """
    root = ET.parse(path).getroot()
    works = [e for e in root.iter()
             if isinstance(e.tag, str) and e.tag.rsplit("}", 1)[-1] == _WORK]
    # A few files carry two <cc:Work>; the one with a title is the drawing's.
    work = next((w for w in works if w.find(DC + "title") is not None),
                works[0] if works else None)
    if work is None:
        return "", "", []
    title = _element_text(work.find(DC + "title"))
    description = _element_text(work.find(DC + "description"))
    keywords = []
    for subject in work.iter(DC + "subject"):
        entries = [li for li in subject.iter(RDF + "li")]
        texts = ([_element_text(li) for li in entries] if entries
                 else [_element_text(subject)])
        for text in texts:
            for keyword in re.split(r"[,;]", text):
                keyword = keyword.strip().lower()
                if keyword and keyword not in keywords:
                    keywords.append(keyword)
    return title, description, keywords


def _element_text(element):
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


# ------------------------------------------------------------------ targets


def _build(items, counts, target, num_labels, categories,
           exclude_category_keywords, exclude_keywords):
    all_categories = sorted(set(items["categories"]))
    keep = np.ones(len(items["paths"]), dtype=bool)
    if target == "category":
        names = sorted(categories) if categories is not None else all_categories
        unknown = sorted(set(names) - set(all_categories))
        if unknown:
            raise DataError(f"clipart: unknown categories {unknown}; choose "
                            f"from {all_categories}")
        column = {name: i for i, name in enumerate(names)}
        labels = np.array([column.get(c, -1) for c in items["categories"]],
                          dtype=np.int64)
        counts["other_category"] = int((labels < 0).sum())
        keep &= labels >= 0
        texts, empty = _clean_texts(items, names + all_categories)
    else:
        excluded = {k.lower() for k in exclude_keywords}
        if exclude_category_keywords:
            excluded |= {f for c in all_categories for f in _number_forms(c)}
        names, texts, empty = _select_keywords(items, excluded, num_labels,
                                               all_categories)
        column = {name: i for i, name in enumerate(names)}
        labels = np.zeros((len(keep), len(names)), dtype=np.float32)
        for row, keywords in enumerate(items["keywords"]):
            for keyword in keywords:
                if keyword in column:
                    labels[row, column[keyword]] = 1.0
        no_label = labels.sum(axis=1) == 0
        counts["no_label"] = int(no_label.sum())
        keep &= ~no_label

    counts["empty_text"] = int((empty & keep).sum())
    keep &= ~empty
    counts["kept"] = int(keep.sum())
    if not keep.any():
        raise DataError(f"clipart: no item left; counts {dict(counts)}")

    index = np.flatnonzero(keep)
    return MultimodalDataset(
        name="clipart",
        inputs={"image": items["images"][index], "text": texts[index]},
        kinds={"image": "image", "text": "text"},
        labels=labels[index], label_names=tuple(names),
        multilabel=target == "keywords",
        extras={"paths": [items["paths"][i] for i in index],
                "categories": [items["categories"][i] for i in index],
                "keywords": [items["keywords"][i] for i in index],
                "counts": dict(counts)})


def _select_keywords(items, excluded, num_labels, all_categories):
    """The most frequent keywords, counting only items whose text survives.

    Removing a keyword from the texts empties some (e.g. 229 cards titled
    "card"), so plain frequencies would pick labels that barely occur once
    those items are dropped. A keyword therefore counts for an item only if
    the item keeps some text once that keyword and the category names are
    removed.
    """
    base, _ = _clean_texts(items, all_categories)
    patterns = {}
    frequency = collections.Counter()
    for text, keywords in zip(base, items["keywords"]):
        for keyword in keywords:
            if keyword in excluded:
                continue
            if keyword not in patterns:
                patterns[keyword] = label_word_pattern([keyword])
            if _has_text(remove_label_words(text, patterns[keyword])):
                frequency[keyword] += 1
    ranked = sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))
    names = [k for k, _ in ranked[:num_labels]]
    texts, empty = _clean_texts(items, names + all_categories)
    return names, texts, empty


def _clean_texts(items, label_words):
    """Title + description without label words, and which came out empty."""
    pattern = label_word_pattern(label_words)
    texts = np.empty(len(items["titles"]), dtype=object)
    for row, (title, description) in enumerate(
            zip(items["titles"], items["descriptions"])):
        texts[row] = remove_label_words(f"{title} {description}", pattern)
    empty = np.array([not _has_text(t) for t in texts], dtype=bool)
    return texts, empty


def _has_text(text):
    return re.search(r"[^\W_]", text) is not None


def _number_forms(word):
    forms = {word, word + "s", word + "es"}
    if len(word) > 3 and word.endswith("s"):
        forms.add(word[:-1])
    if len(word) > 4 and word.endswith("es"):
        forms.add(word[:-2])
    if len(word) > 3 and word.endswith("y"):
        forms.add(word[:-1] + "ies")
    if len(word) > 4 and word.endswith("ies"):
        forms.add(word[:-3] + "y")
    return forms


def label_word_pattern(labels):
    """A regex matching any form of any label as a whole word.

    Args:
        labels: label names, e.g. `["signs_and_symbols", "stop sign"]`.

    Returns:
        A compiled case-insensitive pattern matching each label as a phrase
        (words joined by any run of spaces, `_` or `-`), each of its words of
        3+ letters that is not a stopword, and their simple singular/plural
        forms, only where no letter or digit touches the match.
    """
    phrases = set()
    for label in labels:
        words = [w for w in re.split(r"[\s_\-]+", label.lower()) if w]
        if not words:
            continue
        candidates = [words]
        if len(words) > 1:
            candidates += [[w] for w in words
                           if len(w) >= 3 and w not in _STOPWORDS]
        for candidate in candidates:
            for last in _number_forms(candidate[-1]):
                phrases.add(tuple(candidate[:-1]) + (last,))
    # Longest first so a phrase wins over its own words.
    alternatives = sorted((r"[\s_\-]+".join(map(re.escape, p)) for p in phrases),
                          key=len, reverse=True)
    if not alternatives:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + r")(?![^\W_])",
                      re.IGNORECASE)


def remove_label_words(text, pattern):
    """`text` without the matches of `pattern`, whitespace normalised."""
    return " ".join(pattern.sub(" ", text).split())
