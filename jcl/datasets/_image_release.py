"""Index the tasks of the CLR/SKILL release: an SQLite database of files.

The release (``skill-dataset.zip``) unpacks to ``original_images/`` and
``rolling_releases/database_2.sqlite``. The reference
(``dataset/sample_dataset.py``) reads tables ``datasets(dataset_id,
dataset_name, good)`` and ``files(hash, path, filename, class_id,
dataset_id, problem, "set")`` and opens
``original_images/<dataset_name><path><filename>``; this module does the
same, with the same queries. The schema is known only from those queries.
"""

import sqlite3
from contextlib import closing
from pathlib import Path

from jcl.core.errors import DataError
from jcl.datasets._image_index import SPLITS, check_classes

RELEASE_DATABASE = Path('rolling_releases', 'database_2.sqlite')
RELEASE_IMAGES = 'original_images'
# The 53 tasks of CLR, as dataset ids of the release ("newid" of the
# reference's stat.csv, in its row order, the order main.py learns them).
CLR_TASK_IDS = (
    1, 2, 17, 18, 21, 22, 23, 24, 25, 29, 30, 33, 35, 37, 38, 40, 41, 42,
    44, 48, 49, 57, 58, 61, 63, 68, 74, 76, 80, 81, 82, 96, 98, 99, 100,
    104, 105, 20, 34, 39, 43, 45, 53, 54, 69, 73, 79, 88, 89, 90, 91, 106,
    107)


def read_release_task(connection, root, dataset_id):
    """Index one task of the release database the way the reference does.

    Rows come from the reference's query (``problem=0`` and the split's
    ``"set"``); classes are labelled in order of first appearance among
    the train rows, and each split's classes are visited in order of first
    appearance among that split's rows, as the reference's dicts do.

    Returns:
      ``(name, class_names, {split: [(label, files), ...]})``.
    """
    found = connection.execute(
        'SELECT dataset_name FROM datasets WHERE dataset_id=?',
        (dataset_id,)).fetchall()
    if not found:
        raise DataError(f'{root / RELEASE_DATABASE}: no task with '
                        f'dataset_id={dataset_id}')
    name = found[0][0]
    images = f'{root}/{RELEASE_IMAGES}/{name}'
    by_split = {}
    for set_id, split in enumerate(SPLITS):
        rows = connection.execute(
            'SELECT hash, path, filename, class_id FROM files WHERE '
            'dataset_id=? AND problem=0 AND "set"=?',
            (dataset_id, set_id)).fetchall()
        groups = {}
        for _, path, filename, class_id in rows:
            groups.setdefault(int(class_id), []).append(
                images + path + filename)
        by_split[split] = groups
    class_ids = list(by_split['train'])
    check_classes(f'{images} (dataset_id={dataset_id})', class_ids)
    label_of = {c: i for i, c in enumerate(class_ids)}
    split_groups = {}
    for split, groups in by_split.items():
        unknown = [c for c in groups if c not in label_of]
        if unknown:
            raise DataError(f'{images}: class_id {unknown[0]} of the {split} '
                            'split is not a class of the train split')
        split_groups[split] = [(label_of[c], f) for c, f in groups.items()]
    return name, tuple(str(c) for c in class_ids), split_groups


def read_release(root, dataset_ids):
    """``[(name, class_names, split_groups)]`` of release tasks, in order.

    Only reads the database (opened read-only); an error names it.
    """
    database = Path(root) / RELEASE_DATABASE
    try:
        with closing(sqlite3.connect(
                f'{database.resolve().as_uri()}?mode=ro', uri=True)) as db:
            return [read_release_task(db, root, int(dataset_id))
                    for dataset_id in dataset_ids]
    except sqlite3.Error as e:
        raise DataError(f'{database}: cannot read the tasks (the schema of '
                        f'the reference is expected): {e}') from None
