"""File paths read from a data file stay inside the folder they belong to.

A data file handed over by someone else (a CSV of image paths, a split list of
ids) must not make a loader read arbitrary files on the machine into a model
and its export. `confined_path` resolves a path from such a file against its
base folder (the CSV's folder) and refuses it when it leaves the confining
folder, which is the base folder itself unless the user names another one
explicitly (the CSV loader's `image_root` option):

* an absolute path, unless it lies inside an explicitly given root;
* a relative path whose `..` components climb out of the root;
* a path that stays inside lexically but passes through a symbolic link
  resolving outside the root (the resolved path is compared too).

`check_pixels` refuses images whose header declares more than a pixel budget
(a decompression bomb: a small file that decodes to gigabytes) before any
pixel is decoded.
"""

import os

# 2**26 = 67,108,864 pixels (e.g. 8192 x 8192): far above any photo or poster
# the loaders resize to a few hundred pixels, far below what exhausts memory
# (PIL itself warns at 89.5 and refuses at 179 megapixels).
DEFAULT_MAX_PIXELS = 2 ** 26


class PathError(ValueError):
    """A path from a data file that resolves outside its confining folder."""


class PixelBudgetError(ValueError):
    """An image whose header declares more pixels than the budget."""


def _inside(path, root):
    return os.path.commonpath([path, root]) == root


def confined_path(name, base, root=None, option=None):
    """The real path of `name` (relative to `base`) if it stays inside the root.

    Args:
        name: the path as written in the data file.
        base: the folder relative paths are resolved against (the data file's).
        root: the confining folder, given explicitly by the user. Defaults to
            None: `base`, and absolute paths are refused.
        option: the loader option that sets `root`, named in the message when
            `root` is None. Defaults to None (no such option).

    Returns:
        The resolved path (symbolic links followed), inside the root.

    Raises:
        PathError: the path is absolute (without an explicit root), climbs out
            of the root with `..`, or resolves outside it through a symbolic
            link. The message names the path and the root.
    """
    base = os.path.abspath(os.fspath(base))
    top = base if root is None else os.path.abspath(os.fspath(root))
    hint = (f"; pass the dataset option {option}=DIR to allow paths inside DIR"
            if root is None and option else "")
    if os.path.isabs(name) and root is None:
        raise PathError(f"absolute path {name} is not allowed: paths are relative to "
                        f"{base}{hint}")
    joined = os.path.normpath(os.path.join(base, name))
    if not _inside(joined, top):
        what = "absolute path" if os.path.isabs(name) else "path"
        raise PathError(f"{what} {name} leads outside {top}{hint}")
    real = os.path.realpath(joined)
    if not _inside(real, os.path.realpath(top)):
        raise PathError(f"path {name} resolves through a symbolic link to {real}, "
                        f"outside {top}{hint}")
    return real


def check_pixels(size, max_pixels, what="image"):
    """Refuses an image whose header size exceeds the pixel budget.

    Args:
        size: (width, height) from the image header (PIL's `Image.size`).
        max_pixels: the pixel budget.
        what: the file, for the message.

    Raises:
        PixelBudgetError: width * height > max_pixels.
    """
    width, height = size
    if width * height > max_pixels:
        raise PixelBudgetError(f"{what} is {width}x{height} = {width * height:,} pixels, over "
                         f"the pixel budget of {max_pixels:,} (option max_pixels); "
                         f"not decoded")


__all__ = ["DEFAULT_MAX_PIXELS", "PathError", "PixelBudgetError", "confined_path",
           "check_pixels"]
