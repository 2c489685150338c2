"""Decode and resize images on the host, in parallel, and prefetch batches.

The preprocessing is the reference's ``transforms.Resize((S, S))`` on a
PIL image after ``image.convert("RGB")``: torchvision hands PIL images to
``PIL.Image.resize((S, S), BILINEAR)``, Pillow's antialiased bilinear
filter, so :func:`decode_image` calls exactly that and the pixels match.
No crop, no augmentation; normalisation (``ToTensor`` then ImageNet
mean/std) is left to the model, which receives uint8.
"""

import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from jcl.core.errors import DataError

# What the reference's ToTensor + Normalize do to [0, 1] pixels.
from jcl.datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402,F401


def decode_image(path, image_size):
    """One image file as uint8 ``[S, S, 3]``: RGB, bilinear resize.

    Args:
      path: the image file.
      image_size: ``S``, the side of the square output.

    Returns:
      A uint8 array of shape ``[S, S, 3]``.

    Raises:
      DataError: the file is missing, unreadable or not a valid image.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert('RGB')
        resized = rgb.resize((image_size, image_size),
                             Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError) as e:
        raise DataError(f'{path}: cannot decode the image: {e}') from None


class ImageCache:
    """A least-recently-used store of decoded images, bounded by bytes.

    Thread-safe. A capacity of 0 stores nothing.
    """

    def __init__(self, capacity_bytes):
        self.capacity_bytes = int(capacity_bytes)
        self.used_bytes = 0
        self._images = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._images)

    def get(self, key):
        """The stored image for ``key`` (read-only), or None."""
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
            return image

    def put(self, key, image):
        """Store ``image``, evicting the least recently used as needed."""
        if image.nbytes > self.capacity_bytes:
            return
        image = image.copy()
        image.flags.writeable = False
        with self._lock:
            old = self._images.pop(key, None)
            if old is not None:
                self.used_bytes -= old.nbytes
            self._images[key] = image
            self.used_bytes += image.nbytes
            while self.used_bytes > self.capacity_bytes:
                _, evicted = self._images.popitem(last=False)
                self.used_bytes -= evicted.nbytes


class ImageDecoder:
    """Decodes many files at once on a pool of threads, with a cache.

    Threads, not processes: Pillow releases the GIL while it decodes and
    resizes, and threads write straight into the output array instead of
    pickling each image back from another process.

    Args:
      image_size: ``S``, the side of the square output.
      workers: threads that decode; 0 or 1 decodes in the calling thread.
      cache_bytes: bound of the in-memory cache of decoded images (0: no
        cache). 224x224 images take 147 KiB each.
    """

    def __init__(self, image_size, workers=1, cache_bytes=0):
        self.image_size = int(image_size)
        self.workers = int(workers)
        self.cache = ImageCache(cache_bytes)
        self._pool = None
        self._pool_lock = threading.Lock()

    def _executor(self):
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.workers, thread_name_prefix='jcl-decode')
            return self._pool

    def _decode_into(self, out, row, path):
        image = self.cache.get(path)
        if image is None:
            image = decode_image(path, self.image_size)
            self.cache.put(path, image)
        out[row] = image

    def decode(self, paths):
        """The images of ``paths`` as uint8 ``[len(paths), S, S, 3]``."""
        size = self.image_size
        out = np.empty((len(paths), size, size, 3), np.uint8)
        if self.workers <= 1 or len(paths) <= 1:
            for row, path in enumerate(paths):
                self._decode_into(out, row, path)
            return out
        chunk = -(-len(paths) // (4 * self.workers))   # ~4 jobs per thread
        jobs = [self._executor().submit(self._decode_rows, out, paths,
                                        start, min(start + chunk, len(paths)))
                for start in range(0, len(paths), chunk)]
        for job in jobs:
            job.result()   # re-raises the first DataError, naming its file
        return out

    def _decode_rows(self, out, paths, start, stop):
        for row in range(start, stop):
            self._decode_into(out, row, paths[row])

    def close(self):
        """Stop the threads (a later decode starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_DONE = object()


class _Failure:
    def __init__(self, error):
        self.error = error


def prefetch(function, items, depth=1):
    """``function(item)`` for each item, computed ahead in a thread.

    While the caller works on one result, the next ``depth`` are computed
    in a background thread (``depth=1`` is double buffering). An exception
    in ``function`` (or in iterating ``items``) is raised to the caller at
    the position where its result would have been. Closing the generator
    early (``break``, ``close()`` or garbage collection) stops the thread
    and waits for it.

    Args:
      function: called on each item, in the background thread.
      items: any iterable; it is iterated in the background thread.
      depth: how many finished results may wait for the caller (>= 1).

    Yields:
      ``function(item)`` for each item, in order.
    """
    results = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def offer(value):
        while not stop.is_set():
            try:
                results.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if stop.is_set() or not offer(function(item)):
                    return
        except BaseException as e:   # handed to the consumer
            offer(_Failure(e))
            return
        offer(_DONE)

    worker = threading.Thread(target=produce, name='jcl-prefetch',
                              daemon=True)
    worker.start()
    try:
        while True:
            value = results.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                results.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
