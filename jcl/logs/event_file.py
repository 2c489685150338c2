"""TensorBoard event files, written without TensorFlow.

An event file is a sequence of TFRecords (a little-endian length, its
masked CRC-32C, the bytes, their masked CRC-32C), each an ``Event``
protocol buffer. jcl writes the few messages it needs by hand (scalars,
PNG images and the session restart that makes TensorBoard drop what a
killed run logged after its last checkpoint), so that logging to
TensorBoard needs neither TensorFlow nor ``tensorboard`` itself; the
tests read the files back with TensorBoard's own reader.

>>> hex(crc32c(b'123456789'))          # the standard check value
'0xe3069283'
>>> record = scalar_event(3, 0.0, {'loss': 0.5})
>>> len(frame(record)) == len(record) + 16
True
"""

import os
import socket
import struct
import time

_POLY = 0x82F63B78   # CRC-32C (Castagnoli), reflected


def _table():
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        out.append(c)
    return out


_TABLE = _table()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (the checksum of TFRecord files)."""
    c = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    c = crc32c(data)
    return struct.pack('<I', (((c >> 15) | (c << 17)) + 0xA282EAD8)
                       & 0xFFFFFFFF)


def frame(record: bytes) -> bytes:
    """One TFRecord holding ``record``."""
    head = struct.pack('<Q', len(record))
    return head + _masked(head) + record + _masked(record)


# protocol-buffer encoding: the wire format's varints and field keys
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        bits, n = n & 0x7F, n >> 7
        out.append(bits | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _bytes(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def _int(number: int, value: int) -> bytes:
    return _field(number, 0) + _varint(int(value))


def _event(step: int, wall_time: float, body: bytes = b'') -> bytes:
    # Event: wall_time = 1 (double), step = 2 (int64), then the body
    return (_field(1, 1) + struct.pack('<d', wall_time) + _int(2, step)
            + body)


def scalar_event(step: int, wall_time: float, values: dict) -> bytes:
    """An ``Event`` whose summary holds one ``simple_value`` per tag."""
    summary = b''.join(
        _bytes(1, _bytes(1, tag.encode()) + _field(2, 5)
               + struct.pack('<f', float(v)))
        for tag, v in values.items())
    return _event(step, wall_time, _bytes(5, summary))


def image_event(step: int, wall_time: float, tag: str, png: bytes,
                height: int, width: int, channels: int) -> bytes:
    """An ``Event`` with one PNG image (``Summary.Image``)."""
    image = (_int(1, height) + _int(2, width) + _int(3, channels)
             + _bytes(4, png))
    value = _bytes(1, tag.encode()) + _bytes(4, image)
    return _event(step, wall_time, _bytes(5, _bytes(1, value)))


def restart_event(step: int, wall_time: float) -> bytes:
    """``SessionLog.START`` at ``step``: TensorBoard drops the events of
    the same run logged at ``step`` or later before it (what a killed run
    logged after its last checkpoint, logged again on resuming)."""
    return _event(step, wall_time, _bytes(7, _int(1, 1)))


class EventFile:
    """One event file in ``folder`` (a TensorBoard run), appended to.

    Args:
      folder: the run's directory (created).
    """

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        name = (f'events.out.tfevents.{time.time():.6f}.'
                f'{socket.gethostname()}.{os.getpid()}')
        self.path = os.path.join(folder, name)
        self._f = open(self.path, 'ab')
        version = _event(0, time.time(), _bytes(3, b'brain.Event:2'))
        self._f.write(frame(version))

    def write(self, record: bytes):
        self._f.write(frame(record))

    def flush(self):
        self._f.flush()

    def close(self):
        self._f.close()
