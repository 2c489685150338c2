"""Tests for image task folders: index, reference subsample, decode."""

import random
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jcl.core.errors import ConfigError, DataError
from jcl.datasets import _image_index as index
from jcl.datasets import _image_release as release
from jcl.datasets.image_folders import (
    class_value,
    decode_image,
    open_image_tasks,
    prefetch,
    write_class_images,
    write_example_tasks,
)

SIZE = 24


def _touch_classes(folder, files_per_class):
    """Empty image files (enough to index): class ``cNNN`` gets its count."""
    for c, count in enumerate(files_per_class):
        class_folder = Path(folder, f'c{c:03d}')
        class_folder.mkdir(parents=True)
        for i in range(count):
            (class_folder / f'{i:04d}.png').touch()


def _pillow_reference(path, size):
    """What the reference feeds ToTensor: RGB, then Resize((S, S))."""
    with Image.open(path) as image:
        rgb = image.convert('RGB')
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR))


@pytest.fixture(scope='module')
def example(tmp_path_factory):
    return write_example_tasks(tmp_path_factory.mktemp('tasks'))


@pytest.fixture(scope='module')
def tasks(example):
    with open_image_tasks(example, image_size=SIZE, workers=2) as opened:
        yield opened


# -- indexing ----------------------------------------------------------------

def test_example_sequence_is_indexed(tasks):
    assert tasks.names == ('task0', 'task1', 'task2')
    assert tasks.num_classes == [3, 4, 5]
    for split, per_class in (('train', 6), ('val', 2), ('test', 2)):
        np.testing.assert_array_equal(tasks.split(split).count,
                                      [3 * per_class, 4 * per_class,
                                       5 * per_class])
    assert tasks.split('validation') is tasks.split('val')


def test_labels_follow_sorted_class_names(tmp_path):
    names = ['zebra', 'apple', 'Mango', 'kiwi']
    for rank, name in enumerate(sorted(names)):
        write_class_images(tmp_path / 'fruit' / 'train' / name,
                           class_value(rank), 3, seed=rank)
    opened = open_image_tasks(tmp_path, image_size=SIZE, workers=1)
    assert opened.class_names == [('Mango', 'apple', 'kiwi', 'zebra')]
    train = opened.split('train')
    for path, label in zip(train.paths(0), train.labels(0)):
        assert Path(path).parent.name == sorted(names)[label]
    batch = train.gather(0, np.arange(train.count[0]))
    means = batch.x.reshape(len(batch.y), -1).mean(axis=1)
    np.testing.assert_allclose(means, [class_value(y) for y in batch.y],
                               atol=3)


def test_task_list_comments_relative_paths_and_selection(tmp_path):
    write_example_tasks(tmp_path / 'data', class_counts=(2, 3, 2))
    listing = tmp_path / 'lists' / 'mine.txt'
    listing.parent.mkdir()
    listing.write_text('# two of them\n\n../data/task2/\n  ../data/task0\n')
    opened = open_image_tasks(listing, image_size=SIZE)
    assert opened.names == ('../data/task2', '../data/task0')
    picked = open_image_tasks(tmp_path / 'data', tasks=['task1', 'task0'])
    assert picked.names == ('task1', 'task0')
    assert picked.num_classes == [3, 2]
    with pytest.raises(ConfigError, match='task9'):
        open_image_tasks(tmp_path / 'data', tasks=['task9'])


def test_plain_layout_splits_without_overlap(tmp_path):
    write_example_tasks(tmp_path, class_counts=(3, 4), images=(16, 2, 2),
                        layout='plain')
    opened = open_image_tasks(tmp_path / 'tasks.txt', subsample=None, seed=5)
    for t in range(2):
        parts = [set(opened.split(s).paths(t)) for s in index.SPLITS]
        assert all(len(p) == len(set(p)) for p in parts)
        assert not (parts[0] & parts[1] or parts[0] & parts[2]
                    or parts[1] & parts[2])
        every = sorted(str(p) for p in (tmp_path / f'task{t}').rglob('*.*'))
        assert sorted(parts[0] | parts[1] | parts[2]) == every
        # 20 per class: 2 to test, 2 to val, 16 to train
        np.testing.assert_array_equal(
            np.bincount(opened.split('val').labels(t)), [2] * (3 + t))
    again = open_image_tasks(tmp_path, subsample=None, seed=5)
    other = open_image_tasks(tmp_path, subsample=None, seed=6)
    assert again.split('val').paths(1) == opened.split('val').paths(1)
    assert other.split('val').paths(1) != opened.split('val').paths(1)


# -- the reference subsample -------------------------------------------------

@pytest.mark.parametrize('classes, train_total, val_total', [
    (10, 2560, 260),     # EuroSAT in the reference's stat.csv
    (45, 2565, 270),     # NWPU-RESISC45
    (67, 5092, 536),     # scenes
    (101, 5151, 505),    # Food-101
    (200, 5200, 600),    # birds
])
def test_subsample_totals_match_reference_stat_csv(classes, train_total,
                                                   val_total):
    groups = [(c, [f'{c}/{i}' for i in range(300)]) for c in range(classes)]
    for split, total in (('train', train_total), ('val', val_total),
                         ('test', val_total)):
        kept = index.reference_subsample(split, groups, seed=27)
        assert sum(len(f) for _, f in kept) == total


def test_subsample_mirrors_the_reference_shuffle():
    groups = [(c, [f'c{c}/{i}' for i in range(5 + 7 * c)]) for c in range(4)]
    state = random.getstate()
    try:   # the reference: random.seed(27), then shuffle each class whole
        random.seed(27)
        expected = []
        for label, files in groups:
            files = list(files)
            random.shuffle(files)
            expected.append((label, files[:round(2560 / 4)]))
    finally:
        random.setstate(state)
    assert index.reference_subsample('train', groups, seed=27) == expected


@pytest.mark.parametrize('classes, per_train, per_val', [
    (59, round(2560 / 59), round(256 / 59)),   # 43 and 4: small branch
    (60, round(5120 / 60), round(512 / 60)),   # 85 and 9: large branch
])
def test_subsample_per_class_on_folders(tmp_path, classes, per_train,
                                        per_val):
    train = [per_train + 5] * classes
    train[1] = 10                              # a class below its quota
    _touch_classes(tmp_path / 'big' / 'train', train)
    _touch_classes(tmp_path / 'big' / 'val', [per_val + 2] * classes)
    opened = open_image_tasks(tmp_path, seed=3)
    counts = np.bincount(opened.split('train').labels(0))
    assert counts[1] == 10
    assert set(np.delete(counts, 1)) == {per_train}
    assert set(np.bincount(opened.split('val').labels(0))) == {per_val}
    assert opened.split('test').count[0] == 0
    paths = opened.split('train').paths(0)
    assert len(set(paths)) == len(paths)       # without replacement
    same = open_image_tasks(tmp_path, seed=3).split('train').paths(0)
    other = open_image_tasks(tmp_path, seed=4).split('train').paths(0)
    assert same == paths and other != paths
    full = open_image_tasks(tmp_path, subsample=None)
    assert full.split('train').count[0] == sum(train)


def test_class_cap_drops_like_the_reference_or_refuses(tmp_path):
    _touch_classes(tmp_path / 'many' / 'train', [20] * 301)
    opened = open_image_tasks(tmp_path)
    assert opened.num_classes == [300]
    assert opened.class_names[0][-1] == 'c299'
    counts = np.bincount(opened.split('train').labels(0))
    assert len(counts) == 300 and set(counts) == {round(5120 / 300)}
    with pytest.raises(DataError, match='301 classes.*cap of 300') as info:
        open_image_tasks(tmp_path, extra_classes='error')
    assert str(tmp_path / 'many') in str(info.value)


def test_release_database_is_read_like_the_reference(tmp_path):
    images = tmp_path / 'original_images' / 'toys'
    rows = []
    for set_id, split in enumerate(index.SPLITS):
        for class_id in (7, 3, 5):                # first appearance order
            for i in range(4):
                name = f'{split}_{class_id}_{i}.png'
                rows.append(('h', f'/{split}/{class_id}/', name, class_id,
                             1, 0, set_id))
                Path(images, split, str(class_id)).mkdir(parents=True,
                                                         exist_ok=True)
    rows.append(('h', '/train/7/', 'broken.png', 7, 1, 1, 0))   # problem=1
    database = tmp_path / release.RELEASE_DATABASE
    database.parent.mkdir()
    with sqlite3.connect(database) as connection:
        connection.execute('CREATE TABLE datasets (dataset_id INTEGER, '
                           'dataset_name TEXT, good INTEGER)')
        connection.execute('CREATE TABLE files (hash TEXT, path TEXT, '
                           'filename TEXT, class_id INTEGER, dataset_id '
                           'INTEGER, problem INTEGER, "set" INTEGER)')
        connection.execute("INSERT INTO datasets VALUES (1, 'toys', 1)")
        connection.executemany('INSERT INTO files VALUES (?,?,?,?,?,?,?)',
                               rows)
    connection.close()
    opened = open_image_tasks(tmp_path, tasks=[1], seed=27)
    assert opened.names == ('toys',)
    assert opened.class_names == [('7', '3', '5')]
    train = opened.split('train')
    assert train.count[0] == 12 and opened.split('test').count[0] == 12
    for path, label in zip(train.paths(0), train.labels(0)):
        assert path.startswith(f'{tmp_path}/original_images/toys/train/')
        assert Path(path).parent.name == ('7', '3', '5')[label]
    with pytest.raises(ConfigError, match=r'\[0, 12\)'):
        open_image_tasks(tmp_path, tasks=[1]).split('train').gather(
            0, [12])
    with pytest.raises(DataError, match='dataset_id=9'):
        open_image_tasks(tmp_path, tasks=[9])


# -- decoding ----------------------------------------------------------------

def test_gather_shapes_labels_and_pixels(tasks):
    train = tasks.split('train')
    entries = np.array([[0, 7, 23, 7], [11, 1, 2, 12]])
    batch = train.gather(2, entries)
    assert batch.x.shape == (2, 4, SIZE, SIZE, 3)
    assert batch.x.dtype == np.uint8
    assert batch.y.dtype == np.int32 and batch.task.dtype == np.int32
    np.testing.assert_array_equal(batch.y, train.labels(2)[entries])
    np.testing.assert_array_equal(batch.task, np.full((2, 4), 2))
    means = batch.x.reshape(8, -1).mean(axis=1)
    np.testing.assert_allclose(means, class_value(batch.y.ravel()), atol=3)
    assert train.gather(0, np.zeros((0,), int)).x.shape == (0, SIZE, SIZE, 3)


def test_resize_matches_pillow_exactly(tasks):
    train = tasks.split('train')
    modes = set()
    for task in range(3):
        batch = train.gather(task, np.arange(train.count[task]))
        for image, path in zip(batch.x, train.paths(task)):
            with Image.open(path) as opened:
                modes.add(opened.mode)
            np.testing.assert_array_equal(image,
                                          _pillow_reference(path, SIZE))
    assert modes == {'L', 'RGB', 'RGBA', 'P'}
    path = train.paths(0)[0]
    np.testing.assert_array_equal(decode_image(path, 224),
                                  _pillow_reference(path, 224))


def test_parallel_serial_and_cached_decode_agree(example):
    entries = np.random.default_rng(0).integers(0, 30, size=(5, 6))
    results = []
    for workers, cache_bytes in ((1, 0), (3, 0), (2, 10 * SIZE * SIZE * 3)):
        with open_image_tasks(example, image_size=SIZE, workers=workers,
                              cache_bytes=cache_bytes) as opened:
            train = opened.split('train')
            results.append(train.gather(2, entries).x)
            results.append(train.gather(2, entries).x)
            cache = opened.decoder.cache
            assert cache.used_bytes <= cache.capacity_bytes
    assert len(cache) == 10
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()


def test_prefetch_yields_the_gathers_in_order(tasks):
    train = tasks.split('train')
    chunks = [np.arange(i, i + 6).reshape(2, 3) % 18 for i in range(5)]
    fetched = list(train.prefetch(0, chunks, depth=2))
    assert len(fetched) == 5
    for chunk, batch in zip(chunks, fetched):
        direct = train.gather(0, chunk)
        for got, want in zip(batch, direct):
            np.testing.assert_array_equal(got, want)


def test_prefetch_stops_early_and_passes_errors():
    started = threading.active_count()
    stream = prefetch(lambda i: i * i, range(10**9), depth=1)
    assert [next(stream) for _ in range(3)] == [0, 1, 4]
    stream.close()
    assert threading.active_count() == started

    def fail_at_two(i):
        if i == 2:
            raise DataError('chunk 2 is bad')
        return i

    got = []
    with pytest.raises(DataError, match='chunk 2'):
        for value in prefetch(fail_at_two, range(5)):
            got.append(value)
    assert got == [0, 1]


# -- errors --------------------------------------------------------------------

def test_missing_path_and_bad_task_lists(tmp_path):
    with pytest.raises(DataError, match='no such task list') as info:
        open_image_tasks(tmp_path / 'nowhere')
    assert str(tmp_path / 'nowhere') in str(info.value)
    empty = tmp_path / 'empty.txt'
    empty.write_text('# nothing yet\n\n')
    with pytest.raises(DataError, match='names no task') as info:
        open_image_tasks(empty)
    assert str(empty) in str(info.value)
    listing = tmp_path / 'list.txt'
    listing.write_text('# tasks\nmissing_task\n')
    with pytest.raises(DataError, match='list.txt:2') as info:
        open_image_tasks(listing)
    assert str(tmp_path / 'missing_task') in str(info.value)
    with pytest.raises(DataError, match='no task folders'):
        open_image_tasks(tmp_path)


def test_task_with_one_class_and_empty_class_folder(tmp_path):
    _touch_classes(tmp_path / 'a' / 'solo', [4])
    with pytest.raises(DataError, match='at least 2 class') as info:
        open_image_tasks(tmp_path / 'a')
    assert str(tmp_path / 'a' / 'solo') in str(info.value)
    _touch_classes(tmp_path / 'b' / 'task', [3, 0])
    (tmp_path / 'b' / 'task' / 'c001' / 'notes.txt').touch()
    with pytest.raises(DataError, match='no image files') as info:
        open_image_tasks(tmp_path / 'b')
    assert str(tmp_path / 'b' / 'task' / 'c001') in str(info.value)


def test_split_layout_checks(tmp_path):
    _touch_classes(tmp_path / 'r' / 'task' / 'train', [3, 3])
    _touch_classes(tmp_path / 'r' / 'task' / 'val', [1, 1, 1])
    with pytest.raises(DataError, match="'c002' is not a class") as info:
        open_image_tasks(tmp_path / 'r')
    assert str(tmp_path / 'r' / 'task' / 'val') in str(info.value)
    _touch_classes(tmp_path / 's' / 'task' / 'train', [3, 3])
    (tmp_path / 's' / 'task' / 'extra').mkdir()
    with pytest.raises(DataError, match="'extra' next to train"):
        open_image_tasks(tmp_path / 's')


def test_corrupt_image_is_named(tmp_path):
    write_example_tasks(tmp_path, class_counts=(2, 2), images=(4, 0, 0))
    bad = tmp_path / 'task1' / 'train' / 'class001' / 'img002.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n not really')
    for workers in (1, 2):
        opened = open_image_tasks(tmp_path, image_size=SIZE,
                                  workers=workers)
        train = opened.split('train')
        entry = train.paths(1).index(str(bad))
        with pytest.raises(DataError, match='cannot decode') as info:
            train.gather(1, np.arange(8))
        assert str(bad) in str(info.value)
        assert train.gather(1, [e for e in range(8) if e != entry]).x.shape \
            == (7, SIZE, SIZE, 3)
        opened.close()


def test_option_errors(tasks, tmp_path):
    with pytest.raises(ConfigError, match='unknown split'):
        tasks.split('dev')
    with pytest.raises(ConfigError, match=r'\[0, 18\)'):
        tasks.split('train').gather(0, [18])
    with pytest.raises(ConfigError, match='out of range'):
        tasks.split('train').gather(3, [0])
    with pytest.raises(ConfigError, match='subsample'):
        open_image_tasks(tmp_path, subsample='half')
    with pytest.raises(ConfigError, match='seed'):
        open_image_tasks(tmp_path, seed=-1)
    (tmp_path / 'original_images').mkdir()
    with pytest.raises(DataError, match='database_2.sqlite'):
        open_image_tasks(tmp_path)
