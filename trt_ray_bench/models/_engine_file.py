"""What an Ultralytics ``.engine`` file says about itself: Ultralytics writes its metadata
before the engine (a 4-byte little-endian length, then JSON), trtexec writes none."""

from __future__ import annotations

import json
from typing import Optional, Tuple

#: the most of an engine file read for its metadata (class names make it a few KB)
HEAD_BYTES = 65536


def split_ultralytics_header(data: bytes) -> Tuple[Optional[dict], bytes]:
    """(the metadata, the engine's bytes); (None, data) for a bare engine (trtexec's)."""
    if len(data) > 8 and data[4:5] == b"{":
        n = int.from_bytes(data[:4], "little", signed=True)
        if 0 < n < len(data) - 4:
            try:
                meta = json.loads(data[4:4 + n].decode("utf-8"))
            except ValueError:
                meta = None
            if isinstance(meta, dict):
                return meta, data[4 + n:]
    return None, data


def read_metadata(path) -> Optional[dict]:
    """An engine file's Ultralytics metadata, or None (a bare engine, or no such file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None
    return split_ultralytics_header(head)[0]


def exported_precision(meta: Optional[dict]) -> Optional[Tuple[str, str]]:
    """(precision, the metadata's words for it) as Ultralytics' exporter recorded the export's
    arguments: ``quantize`` (8: int8, 16: fp16, 32 or null: fp32) in the exporters that have
    it, ``int8`` / ``half`` in the earlier ones. None where the metadata has no arguments
    (before 8.2) or a value this does not know."""
    args = (meta or {}).get("args")
    if not isinstance(args, dict):
        return None
    if "quantize" in args:
        q = args["quantize"]
        words = f"quantize={q if q is not None else 'null'}"
        known = {8: "int8", "8": "int8", 16: "fp16", "16": "fp16", 32: "fp32", "32": "fp32", None: "fp32"}
        return (known[q], words) if isinstance(q, (int, str, type(None))) and q in known else None
    if args.get("int8") is True:
        return "int8", "int8=true"
    if args.get("half") is True:
        return "fp16", "half=true"
    if "int8" in args or "half" in args:
        return "fp32", "half=false, int8=false"
    return None
