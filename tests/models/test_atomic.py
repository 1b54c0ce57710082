"""The caches' one way of writing a file (``trt_ray_bench._atomic.write_atomic``), with real
threads writing one file at once."""

import os
import threading

import pytest

from trt_ray_bench._atomic import write_atomic


def test_writers_at_once_each_leave_a_whole_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "sub" / "m.engine"
    blobs = [bytes([i]) * (1 << 20) for i in range(8)]   # 1 MiB each, a different byte
    start = threading.Barrier(len(blobs))

    def writer(blob):
        start.wait()
        for _ in range(5):
            write_atomic(target, blob)

    threads = [threading.Thread(target=writer, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in blobs
    assert os.listdir(target.parent) == ["m.engine"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_a_failed_writer_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "m.onnx"
    write_atomic(target, b"old")

    def half(path):
        path.write_bytes(b"ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, half)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]
    write_atomic(target, lambda p: p.write_bytes(b"new"))
    assert target.read_bytes() == b"new"
