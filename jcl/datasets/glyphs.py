"""Digits of many writing systems, and Latin letters, rendered from Noto.

Every set is drawn from the TrueType fonts of Debian's ``fonts-noto-core``
(SIL Open Font License; ``apt-get install fonts-noto-core``) with Pillow:
white glyphs on black, ``size x size`` uint8 (32 by default), each sample
with its own font (every face of the script in the package, see
:mod:`jcl.datasets._glyph_tables`), stroke width, size, aspect, shear,
rotation (+-8 degrees), shift, ink level, blur and noise (the ranges are in
:mod:`jcl.datasets._glyph_render`). Rendering is deterministic for a given
seed: the train and test splits are separate random streams of the same
process, labels are balanced (a shuffled ``arange(n) % classes``), and the
result is cached as ``<cache>/glyphs-<name>-...npz`` keyed by every
parameter.

* :func:`load_glyph_digits`: one 10-class task per script of
  :data:`GLYPH_SCRIPTS` (54 scripts whose digits the package draws), label
  ``d`` for the script's digit ``d``; 6,000 train + 1,000 test by default.
* :func:`load_glyph_letters`: a pre-training set disjoint from all of
  them: the 52 Latin letters (26 classes, case merged, by default) in 25
  faces (Noto Sans/Serif and their Display cuts in four styles, and nine
  Mathematical Alphanumeric styles of Noto Sans Math, monospace among
  them); no digit of any script is drawn. 62,400 + 10,400 by default.

Before rendering, the fonts are checked file by file against the SHA-256
digests of ``fonts-noto-core`` 20201225-1, and at the default parameters
the result is checked against a recorded digest too, so another font
package (or renderer) is named in a :class:`DataError` instead of silently
giving other images; pass ``verify=False`` to accept it. A cached file is
read without the fonts.

Example:
    >>> import tempfile
    >>> from jcl.datasets import load_glyph_digits
    >>> d = load_glyph_digits("thai", tempfile.mkdtemp(), size=16,
    ...                       n_train=20, n_test=10)
    >>> d["train_x"].shape, d["train_x"].dtype
    ((20, 16, 16), dtype('uint8'))
    >>> sorted(set(d["test_y"].tolist()))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

import warnings

import numpy as np
import PIL
from PIL import features

from jcl.core.errors import ConfigError, DataError
from jcl.datasets import _glyph_digests as digests
from jcl.datasets import _glyph_render as render
from jcl.datasets import _glyph_tables as tables
from jcl.datasets._common import check_split, file_sha256, resolve_dir
from jcl.datasets._npz_cache import cached, split_digest

__all__ = [
    "GLYPH_SCRIPTS",
    "glyph_characters",
    "load_glyph_digits",
    "load_glyph_letters",
]

GLYPH_SCRIPTS = tuple(tables.DIGIT_SCRIPTS)
DEFAULT_CACHE_DIR = "~/.cache/jcl"
RENDER_VERSION = 1  # part of the cache name; bump when rendering changes
DIGIT_DEFAULTS = {"size": 32, "n_train": 6000, "n_test": 1000, "seed": 0}
LETTER_DEFAULTS = {
    "size": 32, "n_train": 62400, "n_test": 10400, "seed": 0,
    "merge_case": True,
}
_HINT = (
    "install them with `apt-get install fonts-noto-core`, or point "
    "font_dir= (or JCL_FONT_DIR) at a folder holding them"
)


def load_glyph_digits(script, cache_dir=None, *, size=32, n_train=6000,
                      n_test=1000, seed=0, font_dir=None, verify=True,
                      workers=1):
    """Rendered digits 0-9 of one script: a 10-class task.

    Args:
        script: one of :data:`GLYPH_SCRIPTS`, e.g. ``"devanagari"``.
        cache_dir: folder for the ``.npz`` cache; defaults to
            ``$JCL_DATA_DIR``, else ``~/.cache/jcl``.
        size: side of the square images in pixels.
        n_train: number of training images (balanced over the 10 digits).
        n_test: number of test images.
        seed: seed of the rendering; the same seed gives the same bytes.
        font_dir: folder of the Noto ``.ttf`` files; defaults to
            ``$JCL_FONT_DIR``, else ``/usr/share/fonts/truetype/noto``.
        verify: check the fonts (and, at the default parameters, the
            result) against the recorded digests.
        workers: processes that render (1: in this one).

    Returns:
        A dict with uint8 arrays ``train_x [n_train, size, size]``,
        ``train_y [n_train]``, ``test_x [n_test, size, size]``, ``test_y``.

    Raises:
        ConfigError: an unknown script or an impossible size or count.
        DataError: fonts are missing or differ from the recorded ones, or
            the cache file is corrupt.
    """
    if script not in tables.DIGIT_SCRIPTS:
        raise ConfigError(
            f"unknown glyph script {script!r}; choose one of "
            + ", ".join(GLYPH_SCRIPTS)
        )
    params = {"size": size, "n_train": n_train, "n_test": n_test,
              "seed": seed}
    default = params == DIGIT_DEFAULTS
    return _load(script, 10, params, default, cache_dir, font_dir, verify,
                 workers)


def load_glyph_letters(cache_dir=None, *, size=32, n_train=62400,
                       n_test=10400, seed=0, merge_case=True,
                       font_dir=None, verify=True, workers=1):
    """Rendered Latin letters for pre-training: no digit of any script.

    Args:
        cache_dir: as for :func:`load_glyph_digits`.
        size: side of the square images in pixels.
        n_train: number of training images (balanced over the classes).
        n_test: number of test images.
        seed: seed of the rendering.
        merge_case: 26 classes ``A/a .. Z/z`` (True), or 52 classes
            ``A..Z`` then ``a..z``.
        font_dir: as for :func:`load_glyph_digits`.
        verify: as for :func:`load_glyph_digits`.
        workers: as for :func:`load_glyph_digits`.

    Returns:
        The same dict as :func:`load_glyph_digits`, with labels in
        ``[0, 26)`` (or ``[0, 52)``).
    """
    params = {"size": size, "n_train": n_train, "n_test": n_test,
              "seed": seed, "merge_case": bool(merge_case)}
    default = params == LETTER_DEFAULTS
    name = "letters" if merge_case else "letters52"
    return _load(name, 26 if merge_case else 52, params, default, cache_dir,
                 font_dir, verify, workers)


def glyph_characters(name):
    """The characters drawn for each class of a set.

    Args:
        name: a script of :data:`GLYPH_SCRIPTS`, ``"letters"`` (26 classes)
            or ``"letters52"``.

    Returns:
        A list with, per label, the string of every character drawn for it.
    """
    classes = {}
    for _, code, _, label in _variants(name):
        classes.setdefault(label, []).append(chr(code))
    return ["".join(dict.fromkeys(classes[k])) for k in sorted(classes)]


def _variants(name):
    """``(font stem, code point, face, label)``, sorted by label."""
    if name in tables.DIGIT_SCRIPTS:
        zero, _ = tables.DIGIT_SCRIPTS[name]
        fonts = tables.script_fonts(name)
        return [(f, zero + d, f, d) for d in range(10) for f in fonts]
    if name not in ("letters", "letters52"):
        raise ConfigError(f"unknown glyph set {name!r}")
    out = []
    for face, (stem, _) in tables.LETTER_FACES.items():
        for i, code in enumerate(tables.letter_chars(face)):
            label = i % 26 if name == "letters" else i
            out.append((stem, code, face, label))
    return sorted(out, key=lambda v: v[3])


def _load(name, classes, params, default, cache_dir, font_dir, verify,
          workers):
    for key in ("size", "n_train", "n_test", "seed"):
        value, low = params[key], 8 if key == "size" else 0
        ok = isinstance(value, (int, np.integer)) and value >= low
        if isinstance(value, bool) or not ok:
            raise ConfigError(f"{key} must be an int >= {low}, not {value!r}")
        params[key] = int(value)
    size, n_train, n_test = params["size"], params["n_train"], params["n_test"]
    expected = digests.RENDER_SHA256.get(name) if (default and verify) else None
    if expected is not None and _renderer() != digests.REFERENCE_RENDERER:
        # another Pillow/FreeType draws slightly other pixels: the fonts
        # are still checked, the images cannot be compared
        warnings.warn(f"glyph set {name!r}: rendered by {_renderer()}, not "
                      f"{digests.REFERENCE_RENDERER} as the recorded "
                      "checksums; the images are not checked against them",
                      stacklevel=3)
        expected = None
    stem = (f"glyphs-{name}-{size}px-{n_train}+{n_test}-seed{params['seed']}"
            f"-r{RENDER_VERSION}")
    path = resolve_dir(cache_dir, "JCL_DATA_DIR", DEFAULT_CACHE_DIR)
    path = path / f"{stem}.npz"

    def check(arrays, source):
        _check_layout(arrays, size, classes, source)
        got = split_digest(arrays)[:16]
        if expected is not None and got != expected:
            raise DataError(
                f"its arrays (sha256 {got}...) are not the reference "
                f"rendering ({expected}...): rendered from other fonts or "
                "by another renderer with verify=False"
            )

    def build():
        arrays = _render(name, classes, params, font_dir, verify, workers)
        _check_layout(arrays, size, classes, f"rendered {name}")
        got = split_digest(arrays)[:16]
        if expected is not None and got != expected:
            raise DataError(
                f"rendering glyph set {name!r} gave sha256 {got}..., not "
                f"the reference {expected}...; the fonts match "
                f"{digests.FONT_PACKAGE} {digests.FONT_PACKAGE_VERSION}, so "
                f"the renderer differs: {_renderer()} here, "
                f"{digests.REFERENCE_RENDERER} for the reference. Pass "
                "verify=False to accept this rendering"
            )
        return arrays

    return cached(path, build, check, what=f"glyph {name}",
                  memo_key=expected)


def _check_layout(arrays, size, classes, source):
    for split in ("train", "test"):
        check_split(arrays[f"{split}_x"], arrays[f"{split}_y"],
                    image_shape=(size, size), num_classes=classes,
                    source=source, split=split)


def _renderer():
    return (f"Pillow {PIL.__version__} with FreeType "
            f"{features.version('freetype2')}")


def _render(name, classes, params, font_dir, verify, workers):
    variants = _variants(name)
    folder = resolve_dir(font_dir, "JCL_FONT_DIR", tables.DEFAULT_FONT_DIR)
    stems = sorted({v[0] for v in variants})
    paths = {s: folder / f"{s}.ttf" for s in stems}
    missing = [f"{s}.ttf" for s in stems if not paths[s].is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(stems)} Noto fonts of glyph set "
            f"{name!r} are missing from {folder} ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}); {_HINT}"
        )
    if verify:
        _check_fonts(paths)
    table = [(str(paths[stem]), code, face) for stem, code, face, _ in
             variants]
    offsets = np.searchsorted([v[3] for v in variants], range(classes + 1))
    labels, draws = {}, []
    for index, split in enumerate(("train", "test")):
        rng = np.random.default_rng([params["seed"], index, *name.encode()])
        n = params[f"n_{split}"]
        labels[split] = rng.permutation(np.arange(n) % classes)
        draws.append(render.sample_params(rng, labels[split], offsets))
    train_x, test_x = render.render(table, draws, params["size"], workers)
    return {
        "train_x": train_x,
        "train_y": labels["train"].astype(np.uint8),
        "test_x": test_x,
        "test_y": labels["test"].astype(np.uint8),
    }


def _check_fonts(paths):
    changed = []
    for stem, path in paths.items():
        digest = file_sha256(path, "font")[:12]
        if digest != digests.FONT_SHA256[stem]:
            changed.append(
                f"{path.name} (sha256 {digest}..., expected "
                f"{digests.FONT_SHA256[stem]}...)"
            )
    if changed:
        raise DataError(
            f"{len(changed)} font file(s) differ from {digests.FONT_PACKAGE} "
            f"{digests.FONT_PACKAGE_VERSION}, with which the glyph sets were "
            f"made: {'; '.join(changed)}. Pass verify=False to render from "
            "them anyway (the images then differ from the reference)"
        )
