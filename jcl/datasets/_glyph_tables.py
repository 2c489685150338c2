"""Which Noto fonts draw which glyphs, and the fonts' recorded digests.

:data:`DIGIT_SCRIPTS` maps each script whose ten decimal digits are
consecutive Unicode code points (``zero + 0 .. zero + 9``) to the Noto
families of Debian's ``fonts-noto-core`` (20201225-1) that contain all ten
(checked against each font's character map). A family stands for its
``-Regular`` and, where the package has one, ``-Bold`` file; scripts are in
Unicode order. :data:`LETTER_FACES` are the Latin faces of the letter set:
sixteen text fonts, plus nine complete styles of the Mathematical
Alphanumeric Symbols in ``NotoSansMath`` (U+1D400 + 52 k: 26 capitals then
26 small letters).
"""

from jcl.datasets._glyph_digests import FONT_SHA256

DEFAULT_FONT_DIR = "/usr/share/fonts/truetype/noto"

_ARABIC = ("NotoSansArabic", "NotoNaskhArabic", "NotoKufiArabic")
DIGIT_SCRIPTS = {
    "arabic": (0x0660, _ARABIC),
    "persian": (0x06F0, _ARABIC),
    "nko": (0x07C0, ("NotoSansNKo",)),
    "devanagari": (0x0966, ("NotoSansDevanagari", "NotoSerifDevanagari")),
    "bengali": (0x09E6, ("NotoSansBengali", "NotoSerifBengali")),
    "gurmukhi": (0x0A66, ("NotoSansGurmukhi", "NotoSerifGurmukhi")),
    "gujarati": (0x0AE6, ("NotoSansGujarati", "NotoSerifGujarati")),
    "oriya": (0x0B66, ("NotoSansOriya",)),
    "tamil": (
        0x0BE6, ("NotoSansTamil", "NotoSerifTamil", "NotoSerifTamilSlanted")
    ),
    "telugu": (0x0C66, ("NotoSansTelugu", "NotoSerifTelugu")),
    "kannada": (0x0CE6, ("NotoSansKannada", "NotoSerifKannada")),
    "malayalam": (0x0D66, ("NotoSansMalayalam", "NotoSerifMalayalam")),
    "sinhala": (0x0DE6, ("NotoSansSinhala", "NotoSerifSinhala")),
    "thai": (0x0E50, ("NotoSansThai", "NotoSerifThai", "NotoLoopedThai")),
    "lao": (0x0ED0, ("NotoSansLao", "NotoSerifLao", "NotoLoopedLao")),
    "tibetan": (0x0F20, ("NotoSerifTibetan",)),
    "myanmar": (0x1040, ("NotoSansMyanmar", "NotoSerifMyanmar")),
    "khmer": (0x17E0, ("NotoSansKhmer", "NotoSerifKhmer")),
    "mongolian": (0x1810, ("NotoSansMongolian",)),
    "limbu": (0x1946, ("NotoSansLimbu",)),
    "new_tai_lue": (0x19D0, ("NotoSansNewTaiLue",)),
    "tai_tham_hora": (0x1A80, ("NotoSansTaiTham",)),
    "tai_tham_tham": (0x1A90, ("NotoSansTaiTham",)),
    "balinese": (0x1B50, ("NotoSansBalinese", "NotoSerifBalinese")),
    "sundanese": (0x1BB0, ("NotoSansSundanese",)),
    "lepcha": (0x1C40, ("NotoSansLepcha",)),
    "ol_chiki": (0x1C50, ("NotoSansOlChiki",)),
    "vai": (0xA620, ("NotoSansVai",)),
    "saurashtra": (0xA8D0, ("NotoSansSaurashtra",)),
    "kayah_li": (0xA900, ("NotoSansKayahLi",)),
    "javanese": (0xA9D0, ("NotoSansJavanese",)),
    "cham": (0xAA50, ("NotoSansCham",)),
    "meetei_mayek": (0xABF0, ("NotoSansMeeteiMayek",)),
    "osmanya": (0x104A0, ("NotoSansOsmanya",)),
    "hanifi_rohingya": (0x10D30, ("NotoSansHanifiRohingya",)),
    "brahmi": (0x11066, ("NotoSansBrahmi",)),
    "sora_sompeng": (0x110F0, ("NotoSansSoraSompeng",)),
    "chakma": (0x11136, ("NotoSansChakma",)),
    "sharada": (0x111D0, ("NotoSansSharada",)),
    "khudawadi": (0x112F0, ("NotoSansKhudawadi",)),
    "newa": (0x11450, ("NotoSansNewa",)),
    "tirhuta": (0x114D0, ("NotoSansTirhuta",)),
    "modi": (0x11650, ("NotoSansModi",)),
    "takri": (0x116C0, ("NotoSansTakri",)),
    "ahom": (0x11730, ("NotoSerifAhom",)),
    "warang_citi": (0x118E0, ("NotoSansWarangCiti",)),
    "bhaiksuki": (0x11C50, ("NotoSansBhaiksuki",)),
    "masaram_gondi": (0x11D50, ("NotoSansMasaramGondi",)),
    "gunjala_gondi": (0x11DA0, ("NotoSansGunjalaGondi",)),
    "mro": (0x16A60, ("NotoSansMro",)),
    "pahawh_hmong": (0x16B50, ("NotoSansPahawhHmong",)),
    "nyiakeng_puachue_hmong": (0x1E140, ("NotoSerifNyiakengPuachueHmong",)),
    "wancho": (0x1E2F0, ("NotoSansWancho",)),
    "adlam": (0x1E950, ("NotoSansAdlam", "NotoSansAdlamUnjoined")),
}

_TEXT_FAMILIES = (
    "NotoSans", "NotoSansDisplay", "NotoSerif", "NotoSerifDisplay"
)
_TEXT_STYLES = ("Regular", "Bold", "Italic", "BoldItalic")
# style index k of U+1D400 + 52 k; these nine have no reserved holes
_MATH_STYLES = {
    "bold": 0,
    "bold-italic": 2,
    "bold-script": 4,
    "bold-fraktur": 7,
    "sans": 8,
    "sans-bold": 9,
    "sans-italic": 10,
    "sans-bold-italic": 11,
    "monospace": 12,
}

# face name: (font file stem, code point of "A"; "a" is 26 further on
# for the math styles, at U+0061 for the text fonts)
LETTER_FACES = {
    **{
        f"{fam}-{style}": (f"{fam}-{style}", None)
        for fam in _TEXT_FAMILIES
        for style in _TEXT_STYLES
    },
    **{
        f"math-{name}": ("NotoSansMath-Regular", 0x1D400 + 52 * k)
        for name, k in _MATH_STYLES.items()
    },
}


def script_fonts(script):
    """The font file stems of a digit script, in a fixed order."""
    _, families = DIGIT_SCRIPTS[script]
    return [
        f"{fam}-{style}"
        for fam in families
        for style in ("Regular", "Bold")
        if f"{fam}-{style}" in FONT_SHA256
    ]


def letter_chars(face):
    """The 52 letters ``A..Z, a..z`` of one face, as code points."""
    _, base = LETTER_FACES[face]
    if base is None:
        return [ord("A") + i for i in range(26)] + [
            ord("a") + i for i in range(26)
        ]
    return [base + i for i in range(52)]
