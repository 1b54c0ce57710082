"""Joining a board to the lab's Ray cluster with what this project needs of it.

Ray does not detect a Jetson's integrated GPU, so a board must say ``--num-gpus=1``
itself; each node also advertises ``trb_node_<name>`` (to place an experiment on a
named board), ``trb_board_<kind>`` (a sweep's ``nodes: {board: kind}``; engines are built
once per kind) and one ``trb_slot`` per GPU that ``CUDA_VISIBLE_DEVICES`` leaves visible
(an experiment owns one GPU: a node with N runs N experiments at once). Ray before
2.52 has no authentication: the node gives the cluster its lab network address (the one
the cluster's traffic goes to; Ray's servers still listen on every interface, so the
boards are firewalled to the lab), and the dashboard stays off."""

from __future__ import annotations

import json
import re
import socket
from typing import List, Optional

from ..errors import UserError

DEFAULT_PORT = 6379
_NAME = re.compile(r"[^A-Za-z0-9_]+")


def node_resources(name: str, board: Optional[str] = None, gpus: Optional[int] = None) -> dict:
    """``board`` defaults to this machine's kind (:func:`~trt_ray_bench.control.board_kind`);
    one ``trb_slot`` per GPU (``gpus``, default the visible ones:
    :func:`~trt_ray_bench.control.detect_gpus`), one on a node without any: an experiment
    owns one GPU, so a node runs as many at once as it has GPUs."""
    from ..control.gpus import board_kind, detect_gpus
    from ..spec._sweep import slug

    board = slug(board) if board else board_kind()
    slots = max(1, detect_gpus() if gpus is None else int(gpus))
    return {f"trb_node_{_NAME.sub('_', name)}": 1, f"trb_board_{board}": 1, "trb_slot": slots}


def ray_start_argv(
    head: bool,
    address: Optional[str] = None,
    node_ip: Optional[str] = None,
    name: Optional[str] = None,
    num_gpus: Optional[int] = None,
    port: int = DEFAULT_PORT,
    board: Optional[str] = None,
) -> List[str]:
    """The ``ray start`` command line for this node (an argv list, never a shell string)."""
    from ..control import detect_gpus

    if head == bool(address):
        raise UserError("node start", "give --head (the first board) or --address HEAD:PORT (the others)")
    name = name or socket.gethostname()
    gpus = detect_gpus() if num_gpus is None else num_gpus
    argv = ["ray", "start"]
    argv += ["--head", f"--port={port}", "--include-dashboard=false"] if head else [f"--address={address}"]
    if node_ip:
        argv.append(f"--node-ip-address={node_ip}")
    argv += [f"--num-gpus={gpus}",
             f"--resources={json.dumps(node_resources(name, board, gpus), separators=(',', ':'))}",
             "--disable-usage-stats"]
    return argv
