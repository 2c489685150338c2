"""A fixed stratified train/test split that keeps identical images together.

Every image gets the key ``SHA-256(salt + its pixel bytes)``; sorted by key
the images come in a pseudo-random order that depends only on the salt and
the pixels (no random generator, so no library version can change it), and
identical images share a key and so sit side by side. Walking that order,
each group of identical images goes to the test split if every one of its
classes still has room there (``n_test`` images per class), else to the
training split. Each split is then ordered by ``SHA-256(key)``, a second
pseudo-random order, so that classes interleave evenly from the start.
"""

import hashlib

import numpy as np

from jcl.core.errors import DataError


def hashed_split(x, y, n_test, salt, *, source):
    """Split ``(x, y)`` into train and test with ``n_test`` per class.

    Args:
        x: images ``[N, ...]``.
        y: integer labels ``[N]``.
        n_test: number of test images of each class.
        salt: bytes that choose the split (e.g. a name and a seed).
        source: the data set's name in error messages.

    Returns:
        ``(train_index, test_index)``: int arrays into ``x``.

    Raises:
        DataError: some class has too few images (in groups that fit).
    """
    keys = [hashlib.sha256(salt + img.tobytes()).digest() for img in x]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    classes = np.unique(y)
    room = {int(c): n_test for c in classes}
    test = np.zeros(len(keys), dtype=bool)
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and keys[order[j]] == keys[order[i]]:
            j += 1
        group = order[i:j]
        need = {}
        for k in group:
            need[int(y[k])] = need.get(int(y[k]), 0) + 1
        if all(room[c] >= n for c, n in need.items()):
            for c, n in need.items():
                room[c] -= n
            test[group] = True
        i = j
    short = [c for c, n in room.items() if n]
    if short:
        raise DataError(
            f"{source}: classes {short} have too few images for {n_test} "
            "test images each"
        )
    shuffle = [hashlib.sha256(key).digest() for key in keys]
    order = sorted(range(len(keys)), key=shuffle.__getitem__)
    order = np.array(order, dtype=np.int64)
    return order[~test[order]], order[test[order]]
