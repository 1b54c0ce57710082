"""The build options of the GPU tests (imported by them: ``from gpu_fast import FAST``)."""


def _fast() -> dict:
    """Build options that keep the tests' engine builds short on the test rig: no cuBLAS /
    cuDNN tactics (the rig has stand-ins for them) and, from TensorRT 8.6 (8.5 has no such
    setting and refuses it), builder optimization level 0."""
    try:
        import tensorrt

        new = tuple(int(x) for x in tensorrt.__version__.split(".")[:2]) >= (8, 6)
    except Exception:  # noqa: BLE001
        new = True
    return {"tactics": "none", "opt_level": 0} if new else {"tactics": "none"}


#: the options every GPU test builds with (``_fast``)
FAST = _fast()
