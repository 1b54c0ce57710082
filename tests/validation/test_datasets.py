"""Data sets read back from disk, and every way a data set can be wrong: each a one-line
UserError naming the file (and line) or the yaml field; skip mode counts what it left out."""

from __future__ import annotations

import shutil

import pytest
import yaml

from trt_ray_bench.errors import UserError
from trt_ray_bench.spec import TASKS
from trt_ray_bench.validation import image_shape, load_dataset, read_image


def _error(call, *args, **kw) -> str:
    with pytest.raises(UserError) as e:
        call(*args, **kw)
    text = str(e.value)
    assert "\n" not in text, text
    return text


def _label_files(data_yaml):
    return sorted((data_yaml.parent / "labels" / "val").glob("*.txt"))


def _with_lines(data_yaml, n):
    """The first label file with at least n lines."""
    return next(f for f in _label_files(data_yaml) if len(f.read_text().splitlines()) >= n)


@pytest.mark.parametrize("task", TASKS)
def test_reads_back_what_the_generator_wrote(task, synthetic_sets, imgsz):
    ds = load_dataset(synthetic_sets[task], task)
    assert (ds.task, ds.n_images, ds.n_listed, ds.names) == (task, 16, 16, {0: "bar", 1: "circle", 2: "cross"})
    assert all(it.labels.shape == imgsz for it in ds.items)
    if task == "classify":  # class index = the folder's sorted position
        index = {name: i for i, name in ds.names.items()}
        assert all(int(it.labels.cls[0]) == index[it.image.parent.name] for it in ds.items)
        return
    assert ds.n_labels == sum(len(f.read_text().splitlines()) for f in _label_files(synthetic_sets[task]))
    h, w = imgsz
    for it in ds.items:
        pts = (it.labels.corners if task == "obb" else it.labels.boxes).reshape(-1, 2)
        assert (pts >= -1).all() and (pts[:, 0] <= w + 1).all() and (pts[:, 1] <= h + 1).all()
    if task == "pose":
        assert ds.kpt_shape == (5, 3) and ds.items[0].labels.keypoints.shape[1:] == (5, 3)
    if task == "segment":
        assert len(ds.items[0].labels.segments) == len(ds.items[0].labels)


def test_labels_are_in_pixels_of_the_image(synthetic_sets, imgsz):
    """The drawn object's colour is where its box says, x along the width."""
    ds = load_dataset(synthetic_sets["detect"], "detect")
    it = next(it for it in ds.items if len(it.labels))
    img = read_image(it.image)
    x1, y1, x2, y2 = it.labels.boxes[0]
    centre = img[int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(int)
    assert img.shape[:2] == imgsz
    assert centre.max() - centre.min() > 60  # a colour, not the grey background


def test_limit_takes_the_first_images(synthetic_sets):
    full = load_dataset(synthetic_sets["detect"], "detect")
    ds = load_dataset(synthetic_sets["detect"], "det", limit=5)
    assert ds.n_images == 5 and ds.n_listed == 16 and ds.images == full.images[:5]
    assert "5 of 16 images" in ds.summary()
    few = load_dataset(synthetic_sets["classify"], "cls", limit=4)  # classes taken in turn
    assert [int(it.labels.cls[0]) for it in few.items] == [0, 1, 2, 0]


def test_val_as_a_list_file(fresh_set):
    data = fresh_set("detect")
    (data.parent / "val.txt").write_text("./images/val/0001.jpg\nimages/val/0002.jpg\n\n")
    cfg = {**yaml.safe_load(data.read_text()), "val": "val.txt"}
    data.write_text(yaml.safe_dump(cfg))
    assert [f.name for f in load_dataset(data, "detect").images] == ["0001.jpg", "0002.jpg"]
    (data.parent / "val.txt").write_text("images/val/0001.jpg\nimages/val/gone.jpg\n")
    assert _error(load_dataset, data, "detect").startswith(f"{data.parent / 'val.txt'}:2: ")


def test_yaml_pointing_to_missing_folders(fresh_set):
    data = fresh_set("detect")
    cfg = yaml.safe_load(data.read_text())
    data.write_text(yaml.safe_dump({**cfg, "val": "images/nope"}))
    msg = _error(load_dataset, data, "detect")
    assert msg.startswith(f"{data}: val: images/nope: no such folder")
    data.write_text(yaml.safe_dump({**cfg, "path": "../nowhere"}))
    assert _error(load_dataset, data, "detect").startswith(f"{data}: path: ../nowhere: no such folder")
    data.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if k != "val"}))
    assert _error(load_dataset, data, "detect").startswith(f"{data}: val: missing")
    assert "no such file or folder" in _error(load_dataset, data.parent / "other.yaml", "detect")


def test_class_id_beyond_the_names(fresh_set):
    data = fresh_set("detect")
    lf = _with_lines(data, 2)
    lines = lf.read_text().splitlines()
    lines[1] = "7" + lines[1][1:]
    lf.write_text("\n".join(lines) + "\n")
    assert _error(load_dataset, data, "detect") == f"{lf}:2: class 7 but names has 3 classes (0-2)"

    ds = load_dataset(data, "detect", on_bad_label="skip")
    assert ds.n_images == 15 and lf.with_suffix(".jpg").name not in [f.name for f in ds.images]
    assert ds.skipped == (f"{lf}:2: class 7 but names has 3 classes (0-2)",) and ds.n_bad_lines == 1
    assert "1 images skipped for 1 bad label lines" in ds.summary()


@pytest.mark.parametrize("line, reason", [
    ("0 0.5 abc 0.2 0.2", "not a number: 'abc'"),
    ("0 0.5 0.5 0.2", "4 columns, too few for a detect label"),
    ("1.5 0.5 0.5 0.2 0.2", "class id must be a whole number"),
    ("0 0.5 0.5 -0.2 0.2", "box width and height must be positive"),
    ("0 1.5 0.5 0.2 0.2", "coordinates must be normalized to 0..1"),
    ("0 0.1 0.1 0.2 0.2 0.3", "a polygon needs at least 3 x y pairs"),
    ("nan 0.5 0.5 0.2 0.2", "not a finite number: nan"),
])
def test_malformed_label_lines(line, reason, fresh_set):
    data = fresh_set("detect")
    lf = _label_files(data)[2]
    n = len(lf.read_text().splitlines()) + 1
    lf.write_text(lf.read_text() + line + "\n")
    assert _error(load_dataset, data, "detect").startswith(f"{lf}:{n}: {reason}")
    ds = load_dataset(data, "detect", on_bad_label="skip")
    assert ds.n_images == 15 and ds.n_bad_lines == 1 and ds.skipped[0].startswith(f"{lf}:{n}: {reason}")


def test_skip_counts_every_bad_line(fresh_set):
    data = fresh_set("detect")
    files = _label_files(data)
    for f in files[:3]:
        f.write_text(f.read_text() + "0 x\n0 y\n")
    ds = load_dataset(data, "detect", on_bad_label="skip")
    assert (ds.n_images, len(ds.skipped), ds.n_bad_lines) == (13, 3, 6)
    # limit counts usable images: the first 5 that were not skipped
    assert load_dataset(data, "detect", on_bad_label="skip", limit=5).images == ds.images[:5]


def test_missing_label_file_is_an_image_without_objects(fresh_set):
    data = fresh_set("detect")
    _label_files(data)[0].unlink()
    ds = load_dataset(data, "detect")
    assert ds.n_images == 16 and ds.n_background == 1 and len(ds.items[0].labels) == 0
    assert "1 without a label file" in ds.summary()
    shutil.rmtree(data.parent / "labels")
    assert "no label files for a detect data set" in _error(load_dataset, data, "detect")


def test_task_and_data_mismatch(synthetic_sets):
    cls_folder, det_yaml = synthetic_sets["classify"], synthetic_sets["detect"]
    assert "class folders, a classify data set: a detect model needs an Ultralytics data yaml" in \
        _error(load_dataset, cls_folder, "detect")
    assert "detect-style data set; a classify model needs class folders" in \
        _error(load_dataset, det_yaml, "classify")
    assert _error(load_dataset, det_yaml.parent, "detect").endswith(f"; give {det_yaml}?")
    first = _label_files(det_yaml)[0]
    assert _error(load_dataset, det_yaml, "obb") == \
        f"{first}:1: 5 columns, but obb labels have 9: cls x1 y1 x2 y2 x3 y3 x4 y4"
    assert "no label line fits a obb data set" in \
        _error(load_dataset, det_yaml, "obb", on_bad_label="skip")
    assert "but segment labels are polygons" in _error(load_dataset, det_yaml, "segment")
    assert _error(load_dataset, det_yaml, "pose").startswith(f"{det_yaml}: kpt_shape: expected [keypoints, 2 or 3]")


def test_class_folders_named_by_a_data_yaml(synthetic_sets, tmp_path):
    """Given to a box model through a yaml, class folders have no labels: said so."""
    folder = synthetic_sets["classify"]
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(folder), "val": "val", "names": ["a", "b", "c"]}))
    assert load_dataset(data, "classify").names == {0: "a", 1: "b", 2: "c"}
    assert "the images are in class folders, a classify data set" in _error(load_dataset, data, "detect")
    data.write_text(yaml.safe_dump({"path": str(folder), "val": "val", "names": ["a", "b"]}))
    assert "names has 2 classes but" in _error(load_dataset, data, "classify")


def test_images_that_fail_to_decode(fresh_set, imgsz):
    data = fresh_set("detect")
    bad = data.parent / "images" / "val" / "0003.jpg"
    good = bad.read_bytes()
    bad.write_bytes(b"not an image at all")
    assert _error(load_dataset, data, "detect").startswith(f"{bad}: cannot decode the image")
    bad.write_bytes(good[: len(good) // 2])  # the header, half the pixels: found when they are read
    ds = load_dataset(data, "detect")
    assert _error(read_image, bad).startswith(f"{bad}: cannot decode the image")
    assert read_image(ds.images[0]).shape == imgsz + (3,)


def test_options_are_checked(synthetic_sets):
    assert _error(load_dataset, synthetic_sets["detect"], "detect", on_bad_label="ignore").startswith("on_bad_label:")
    assert _error(load_dataset, synthetic_sets["detect"], "depth").startswith("task: unknown task 'depth'")
    assert _error(load_dataset, synthetic_sets["detect"], "detect", limit=0).startswith("limit:")


def test_exif_rotation_turns_the_image_as_ultralytics_does(tmp_path):
    from PIL import Image

    f = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (40, 20)).save(f, exif=exif)
    assert image_shape(f) == (40, 20) and read_image(f).shape == (40, 20, 3)


def test_pose_data_for_a_detect_model_gives_its_boxes(synthetic_sets):
    """As Ultralytics: with kpt_shape in the yaml, a pose row is a box for detect."""
    pose = load_dataset(synthetic_sets["pose"], "pose")
    det = load_dataset(synthetic_sets["pose"], "detect")
    assert det.n_labels == pose.n_labels
    assert all((a.labels.boxes == b.labels.boxes).all() for a, b in zip(det.items, pose.items))


def test_repeated_label_lines_are_dropped(fresh_set):
    data = fresh_set("detect")
    lf = _with_lines(data, 1)
    before = load_dataset(data, "detect").n_labels
    lf.write_text(lf.read_text() + lf.read_text().splitlines()[0] + "\n")
    ds = load_dataset(data, "detect")
    assert ds.n_labels == before and ds.n_repeated == 1 and "1 repeated label lines dropped" in ds.summary()


def test_classify_folder_without_the_split(synthetic_sets, tmp_path):
    shutil.copytree(synthetic_sets["classify"] / "val", tmp_path / "train")
    assert _error(load_dataset, tmp_path, "classify") == f"{tmp_path}: no val/ folder (it has train)"
    assert load_dataset(tmp_path / "train", "classify").n_images == 16  # the split folder itself
