"""Deterministic rendering of font glyphs into small augmented images.

Each glyph is rasterised once per (font, character, stroke width) at a
high resolution (:data:`HI_PX` pixels per em, Pillow's basic layout, so
libraqm plays no part) and cropped to its ink. Every sample then maps one
of these masks through its own affine transform (scale, aspect, shear,
rotation, translation) onto a canvas four times the output size, which is
box-averaged down (anti-aliasing), scaled to a random ink level, blurred
and given Gaussian noise: white strokes on black, like MNIST. The scale is
set by the largest glyph of the face, so glyphs keep their relative sizes
(a dot-like zero stays small). All random numbers are drawn up front from
:func:`numpy.random.default_rng` streams derived from one seed, in chunks
of :data:`CHUNK` samples, so the bytes do not depend on how many worker
processes render the chunks.
"""

import math
import multiprocessing

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from jcl.core.errors import DataError

HI_PX = 96  # font size (pixels per em) of the pre-rendered masks
STROKES = (0, 1, 3)  # extra outline widths, in HI_PX pixels
SUPER = 4  # supersampling factor of the canvas
CHUNK = 1000  # samples per noise stream (and per worker job)
NOTDEF_PROBE = "\U0010fffd"  # a private-use code point no font maps

# name: (low, high) of the uniform draw, per sample
RANGES = {
    "fill": (0.55, 0.85),  # largest glyph of the face / image side
    "aspect": (-0.1, 0.1),  # log of the width/height stretch
    "shear": (-0.15, 0.15),
    "angle": (-8.0, 8.0),  # rotation in degrees
    "shift_x": (-0.08, 0.08),  # translation as a fraction of the side
    "shift_y": (-0.08, 0.08),
    "ink": (170.0, 255.0),  # grey level of the strokes
    "blur": (0.0, 0.8),  # Gaussian blur radius in output pixels
    "noise": (0.0, 10.0),  # standard deviation of additive noise
}


def load_font(path):
    """A Pillow font at :data:`HI_PX` with the basic layout engine."""
    return ImageFont.truetype(
        str(path), HI_PX, layout_engine=ImageFont.Layout.BASIC
    )


def _mask(font, char, stroke):
    """The glyph's ink as a cropped uint8 array, or None when blank."""
    left, top, right, bottom = font.getbbox(char, stroke_width=stroke)
    pad = 2 + stroke
    img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad))
    ImageDraw.Draw(img).text(
        (pad - left, pad - top),
        char,
        fill=255,
        font=font,
        stroke_width=stroke,
        stroke_fill=255,
    )
    box = img.getbbox()
    if box is None:
        return None
    return np.asarray(img.crop(box))


def sample_params(rng, labels, offsets):
    """Draw every per-sample parameter of one split.

    Args:
        rng: a ``numpy.random.Generator``.
        labels: int array of class labels, one per sample.
        offsets: int array of length ``classes + 1``; the variants of
            class ``c`` are ``offsets[c]:offsets[c + 1]``.

    Returns:
        A dict of arrays, one entry per sample: ``variant`` (drawn
        uniformly among the sample's class's variants), ``stroke`` (index
        into :data:`STROKES`), each of :data:`RANGES`, and ``chunk_seed``
        (one per chunk of :data:`CHUNK` samples, for the noise).
    """
    n = len(labels)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = offsets[1:][labels] - offsets[:-1][labels]
    pick = np.floor(rng.random(n) * counts).astype(np.int64)
    params = {
        "variant": offsets[:-1][labels] + np.minimum(pick, counts - 1),
        "stroke": rng.integers(0, len(STROKES), n),
    }
    for name, (low, high) in RANGES.items():
        params[name] = rng.uniform(low, high, n)
    params["chunk_seed"] = rng.integers(0, 2**63, -(-n // CHUNK))
    return params


def build_table(variants):
    """Pre-render every variant at every stroke width.

    Args:
        variants: a list of ``(font path, code point, face)``; ``face``
            groups the variants whose sizes are normalised together.

    Returns:
        ``(masks, refs)``: ``masks[v][s]`` is variant ``v``'s mask with
        stroke ``STROKES[s]``, ``refs[v][s]`` the larger side of the
        largest ink box among the variants of its face at that stroke, so
        glyphs keep their sizes relative to each other (a dot-like zero
        stays small).

    Raises:
        DataError: a font draws one of its characters as .notdef or blank.
    """
    fonts = {}
    masks = []
    for path, code, _ in variants:
        if path not in fonts:
            font = load_font(path)
            fonts[path] = (font, _mask(font, NOTDEF_PROBE, 0))
        font, notdef = fonts[path]
        row = [_mask(font, chr(code), w) for w in STROKES]
        if row[0] is None or (
            notdef is not None and np.array_equal(row[0], notdef)
        ):
            raise DataError(
                f"{path} has no glyph for U+{code:04X}; the font is not "
                "the one this data set was made with"
            )
        masks.append(row)
    largest = {}
    for (_, _, face), row in zip(variants, masks):
        sides = [max(m.shape) for m in row]
        old = largest.get(face, sides)
        largest[face] = [max(a, b) for a, b in zip(old, sides)]
    refs = [largest[face] for _, _, face in variants]
    return masks, refs


def render(variants, splits, size, workers=1):
    """Render splits as uint8 ``[n, size, size]`` arrays.

    Args:
        variants: as for :func:`build_table`.
        splits: a list of dicts from :func:`sample_params`, with
            ``variant`` an index into ``variants``.
        size: side of the images in pixels.
        workers: processes to render chunks in; 1 renders here. More
            start fresh interpreters (``spawn``), so a calling script needs
            the usual ``if __name__ == "__main__":`` guard.

    Returns:
        One array per split.
    """
    jobs = [
        (index, start)
        for index, params in enumerate(splits)
        for start in range(0, len(params["variant"]), CHUNK)
    ]
    if workers <= 1 or len(jobs) <= 1:
        _init(variants, splits, size)
        try:
            chunks = [_job(job) for job in jobs]
        finally:
            _STATE.clear()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(
            min(workers, len(jobs)),
            initializer=_init,
            initargs=(variants, splits, size),
        ) as pool:
            chunks = pool.map(_job, jobs)
    out = []
    for index in range(len(splits)):
        parts = [c for (i, _), c in zip(jobs, chunks) if i == index]
        empty = np.zeros((0, size, size), dtype=np.uint8)
        out.append(np.concatenate(parts) if parts else empty)
    return out


_STATE = {}


def _init(variants, splits, size):
    masks, refs = build_table(variants)
    _STATE.update(masks=masks, refs=refs, splits=splits, size=size)


def _job(job):
    index, start = job
    params = _STATE["splits"][index]
    stop = min(start + CHUNK, len(params["variant"]))
    return render_chunk(
        _STATE["masks"], _STATE["refs"], params, _STATE["size"], start, stop
    )


def render_chunk(masks, refs, params, size, start, stop):
    """Render samples ``start:stop`` (one chunk) as uint8 ``[k, size, size]``.

    Args:
        masks: the table from :func:`build_table`.
        refs: the reference sizes from :func:`build_table`.
        params: the dict from :func:`sample_params` for the whole split.
        size: side of the output images in pixels.
        start: index of the chunk's first sample (a multiple of CHUNK).
        stop: one past the chunk's last sample.
    """
    out = np.empty((stop - start, size, size), dtype=np.uint8)
    noise_rng = np.random.default_rng(params["chunk_seed"][start // CHUNK])
    noise = noise_rng.standard_normal(out.shape)
    for k, i in enumerate(range(start, stop)):
        v, s = int(params["variant"][i]), int(params["stroke"][i])
        p = {name: float(params[name][i]) for name in RANGES}
        img = _warp(masks[v][s], refs[v][s], p, size)
        img = img * (p["ink"] / 255.0) + noise[k] * p["noise"]
        out[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def _warp(mask, ref, p, size):
    """Affine-map one mask into a float ``[size, size]`` image in 0..255."""
    big = size * SUPER
    h, w = mask.shape
    stretch = math.exp(p["aspect"])
    theta = math.radians(p["angle"])
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]])
    shape = np.array([[stretch, p["shear"]], [0.0, 1.0 / stretch]])
    # The face's largest glyph would span fill * side.
    lin = rot @ shape * (p["fill"] * big / ref)
    half = np.array([[-w, w, w, -w], [-h, -h, h, h]]) / 2.0
    corners = lin @ half
    reach = corners.max(axis=1)
    limit = big / 2.0 - SUPER
    if reach.max() > limit:  # shrink what rotation and shear pushed out
        lin = lin * (limit / reach.max())
        reach = reach * (limit / reach.max())
    room = limit - reach
    shift = np.clip(np.array([p["shift_x"], p["shift_y"]]) * big, -room, room)
    center = np.array([big / 2.0, big / 2.0]) + shift
    inv = np.linalg.inv(lin)
    offset = np.array([w / 2.0, h / 2.0]) - inv @ center
    coeffs = (
        inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1]
    )
    canvas = Image.fromarray(mask).transform(
        (big, big), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
    ).reduce(SUPER)
    if p["blur"] > 0.05:
        canvas = canvas.filter(ImageFilter.GaussianBlur(p["blur"]))
    return np.asarray(canvas, dtype=np.float64)
