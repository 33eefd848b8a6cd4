"""The four benchmark readers on tiny generated folders in each published layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hyperdml.data import build_datasets
from hyperdml.errors import DatasetError


def check_splits(s, sizes, num_classes, train_labels, test_labels):
    """Lengths, class counts and labels of the train / test sets of ``s``."""
    assert (len(s.train), len(s.test)) == sizes
    assert (s.num_train_classes, s.num_test_classes) == num_classes
    assert s.train.labels.tolist() == train_labels
    assert s.test.labels.tolist() == test_labels


def write_image(path, seed=0, size=(7, 5), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(path)


# ---------------------------------------------------------------- CUB-200-2011
CUB_CLASSES = {1: 3, 2: 2, 100: 2, 101: 2, 150: 3, 200: 1}  # class id → images


def make_cub(root):
    d = root / "CUB_200_2011"
    images, labels, classes = [], [], []
    i = 0
    for cid, n in CUB_CLASSES.items():
        name = f"{cid:03d}.Bird_{cid}"
        classes.append(f"{cid} {name}")
        for j in range(n):
            i += 1
            rel = f"{name}/Bird_{cid}_{j:04d}.jpg"
            write_image(d / "images" / rel, seed=i, mode="L" if i == 2 else "RGB")  # one grey image
            images.append(f"{i} {rel}")
            labels.append(f"{i} {cid}")
    (d / "images.txt").write_text("\n".join(images) + "\n")
    (d / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (d / "classes.txt").write_text("\n".join(classes) + "\n")
    return d


@pytest.mark.parametrize("use_parent", [False, True], ids=["folder", "parent"])
def test_cub_split_counts_and_labels(tmp_path, use_parent):
    d = make_cub(tmp_path)
    s = build_datasets("cub", tmp_path if use_parent else d, image_size=16)
    check_splits(s, (7, 6), (3, 3), [0, 0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 2])
    assert s.train_class_names == ["001.Bird_1", "002.Bird_2", "100.Bird_100"]
    assert s.test_class_names == ["101.Bird_101", "150.Bird_150", "200.Bird_200"]
    assert s.channels == 3 and s.image_size == 16 and s.train_super_labels is None
    x, y = s.test[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    x, _ = s.train[1]  # the grey image comes out RGB
    assert x.shape == (3, 16, 16)


def test_labels_do_not_load_images(tmp_path, monkeypatch):
    s = build_datasets("cub", make_cub(tmp_path))
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("an image was opened"))
    assert s.train.labels.dtype == torch.int64 and len(s.train.labels) == 7


def test_default_image_size_and_custom_transform(tmp_path):
    d = make_cub(tmp_path)
    s = build_datasets("cub", d)
    assert s.image_size == 224 and s.train[0][0].shape == (3, 224, 224) and s.test[0][0].shape == (3, 224, 224)
    s = build_datasets("cub", d, test_transform=lambda img: torch.tensor(img.size))
    assert s.test[0][0].tolist() == [7, 5]  # the raw PIL size reached the transform


@pytest.mark.parametrize("missing", ["images.txt", "image_class_labels.txt", "classes.txt"])
def test_cub_missing_file_is_named(tmp_path, missing):
    d = make_cub(tmp_path)
    (d / missing).unlink()
    with pytest.raises(DatasetError, match=missing) as err:
        build_datasets("cub", d)
    assert str(d) in str(err.value) and "expected" in str(err.value)


def test_cub_missing_image_and_malformed_lines(tmp_path):
    d = make_cub(tmp_path)
    (d / "images" / "001.Bird_1" / "Bird_1_0000.jpg").unlink()
    with pytest.raises(DatasetError, match=r"expected image .*Bird_1_0000.jpg \(listed in .*images.txt\)"):
        build_datasets("cub", d)
    make_cub(tmp_path)
    (d / "image_class_labels.txt").write_text("1\n")
    with pytest.raises(DatasetError, match=r"malformed line 1 of .*image_class_labels.txt"):
        build_datasets("cub", d)
    (d / "image_class_labels.txt").write_text("1 x\n")
    with pytest.raises(DatasetError, match="not an integer"):
        build_datasets("cub", d)


def test_root_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"expected .*images.txt"):
        build_datasets("cub", tmp_path)
    with pytest.raises(DatasetError, match="is not a folder"):
        build_datasets("cub", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="needs a data root"):
        build_datasets("sop")
    with pytest.raises(DatasetError, match="unknown data set 'imagenet'"):
        build_datasets("imagenet")
    make_cub(tmp_path / "a")
    make_cub(tmp_path / "b")
    (tmp_path / "a" / "CUB_200_2011").rename(tmp_path / "x1")
    (tmp_path / "b" / "CUB_200_2011").rename(tmp_path / "x2")
    with pytest.raises(DatasetError, match="several folders"):
        build_datasets("cub", tmp_path)


def test_unreadable_image_is_named(tmp_path):
    d = make_cub(tmp_path)
    (d / "images" / "002.Bird_2" / "Bird_2_0000.jpg").write_bytes(b"not a jpeg")
    s = build_datasets("cub", d)
    with pytest.raises(DatasetError, match="cannot read image .*Bird_2_0000.jpg"):
        s.train[3]


# ---------------------------------------------------------------- Cars196
CARS_CLASSES = {1: 2, 50: 1, 98: 3, 99: 2, 196: 2}


def make_cars(root, folder="cars196"):
    """``cars_annos.mat`` as published: ``annotations`` 1×N struct (relative_im_path, bbox_x1,
    bbox_y1, bbox_x2, bbox_y2, class, test; numbers as uint8/uint16 2-D arrays) and
    ``class_names`` 1×196 cell of strings."""
    from scipy.io import savemat

    d = root / folder
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    rows = []
    i = 0
    for cid, n in CARS_CLASSES.items():
        for _ in range(n):
            i += 1
            rel = f"car_ims/{i:06d}.jpg"
            write_image(d / rel, seed=i)
            rows.append((np.array([rel]), np.array([[1]], np.uint8), np.array([[2]], np.uint8),
                         np.array([[6]], np.uint16), np.array([[4]], np.uint16),
                         np.array([[cid]], np.uint8), np.array([[i % 2]], np.uint8)))
    ann = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for j, row in enumerate(rows):
        ann[0, j] = row
    names = np.empty((1, 196), dtype=object)
    for j in range(196):
        names[0, j] = np.array([f"Make{j + 1} Model 2012"])
    savemat(d / "cars_annos.mat", {"annotations": ann, "class_names": names})
    return d


def test_cars_mat_has_the_published_structure(tmp_path):
    from scipy.io import loadmat

    mat = loadmat(make_cars(tmp_path) / "cars_annos.mat")
    ann = mat["annotations"]
    assert ann.shape == (1, 10) and ann.dtype.names[0] == "relative_im_path"
    assert ann[0, 0]["relative_im_path"][0] == "car_ims/000001.jpg" and ann[0, 0]["class"][0, 0] == 1
    assert mat["class_names"].shape == (1, 196) and mat["class_names"][0, 1][0] == "Make2 Model 2012"


@pytest.mark.parametrize("use_parent", [False, True], ids=["folder", "parent"])
def test_cars_split_counts_and_labels(tmp_path, use_parent):
    d = make_cars(tmp_path)
    s = build_datasets("cars", tmp_path if use_parent else d, image_size=8)
    check_splits(s, (6, 4), (3, 2), [0, 0, 1, 2, 2, 2], [0, 0, 1, 1])  # the 'test' flag is ignored: split by class
    assert s.train_class_names == ["Make1 Model 2012", "Make50 Model 2012", "Make98 Model 2012"]
    assert s.test_class_names == ["Make99 Model 2012", "Make196 Model 2012"]
    assert s.test[3][0].shape == (3, 8, 8)


def test_cars_errors(tmp_path):
    d = make_cars(tmp_path)
    (d / "car_ims" / "000010.jpg").unlink()
    with pytest.raises(DatasetError, match=r"expected image .*000010.jpg"):
        build_datasets("cars", d)
    (d / "cars_annos.mat").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"cannot read .*cars_annos.mat"):
        build_datasets("cars", d)
    from scipy.io import savemat

    savemat(d / "cars_annos.mat", {"something": np.zeros(3)})
    with pytest.raises(DatasetError, match="lacks the 'annotations' struct"):
        build_datasets("cars", d)
    (d / "cars_annos.mat").unlink()
    with pytest.raises(DatasetError, match=r"expected .*cars_annos.mat"):
        build_datasets("cars", tmp_path)


# ---------------------------------------------------------------- Stanford Online Products
SOP_SUPERS = {1: "bicycle", 3: "chair", 12: "toaster"}


def make_sop(root):
    d = root / "Stanford_Online_Products"
    # (class id, super id, images): train classes 1-3, test classes 4-6
    train = [(1, 1, 2), (2, 3, 2), (3, 12, 3)]
    test = [(4, 1, 2), (5, 1, 2), (6, 12, 2)]
    i = 0
    for split, rows in (("train", train), ("test", test)):
        lines = ["image_id class_id super_class_id path"]
        for cid, sid, n in rows:
            for j in range(n):
                i += 1
                rel = f"{SOP_SUPERS[sid]}_final/{cid:06d}_{j}.JPG"
                write_image(d / rel, seed=i)
                lines.append(f"{i} {cid} {sid} {rel}")
        (d / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")
    (d / "Ebay_info.txt").write_text("image_id class_id super_class_id path\n")
    return d


@pytest.mark.parametrize("use_parent", [False, True], ids=["folder", "parent"])
def test_sop_split_and_super_classes(tmp_path, use_parent):
    d = make_sop(tmp_path)
    s = build_datasets("sop", tmp_path if use_parent else d, image_size=8)
    check_splits(s, (7, 6), (3, 3), [0, 0, 1, 1, 2, 2, 2], [0, 0, 1, 1, 2, 2])
    assert s.super_class_names == ["bicycle", "chair", "toaster"]
    assert s.train_super_labels == [0, 1, 2] and s.test_super_labels == [0, 0, 2]
    assert s.train[6][0].shape == (3, 8, 8)


def test_sop_errors(tmp_path):
    d = make_sop(tmp_path)
    (d / "Ebay_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"expected .*Stanford_Online_Products.*Ebay_test.txt"):
        build_datasets("sop", d)
    d = make_sop(tmp_path)
    (d / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n1 1 1\n")
    with pytest.raises(DatasetError, match=r"malformed line 2 of .*Ebay_train.txt"):
        build_datasets("sop", d)
    (d / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n")
    with pytest.raises(DatasetError, match=r"Ebay_train.txt lists no images"):
        build_datasets("sop", d)


# ---------------------------------------------------------------- In-Shop
INSHOP = [  # (path under img/, item id, status)
    ("WOMEN/Dresses/id_00000002/02_1_front.jpg", "id_00000002", "train"),
    ("WOMEN/Dresses/id_00000002/02_2_side.jpg", "id_00000002", "train"),
    ("MEN/Denim/id_00000007/01_1_front.jpg", "id_00000007", "train"),
    ("MEN/Denim/id_00000001/01_1_front.jpg", "id_00000001", "query"),
    ("MEN/Denim/id_00000001/01_2_side.jpg", "id_00000001", "gallery"),
    ("MEN/Denim/id_00000001/01_3_back.jpg", "id_00000001", "gallery"),
    ("WOMEN/Skirts/id_00000009/03_1_front.jpg", "id_00000009", "query"),
    ("WOMEN/Skirts/id_00000009/03_4_full.jpg", "id_00000009", "query"),
    ("WOMEN/Skirts/id_00000009/03_2_side.jpg", "id_00000009", "gallery"),
]


def make_inshop(root, in_eval=True):
    d = root / "In-shop Clothes Retrieval Benchmark"
    for i, (rel, _, _) in enumerate(INSHOP):
        write_image(d / "img" / rel, seed=i)
    lines = [str(len(INSHOP)), "image_name item_id evaluation_status"]
    lines += [f"img/{rel} {item} {status}" for rel, item, status in INSHOP]
    listing = (d / "Eval" if in_eval else d) / "list_eval_partition.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(lines) + "\n")
    return d


@pytest.mark.parametrize("in_eval", [True, False], ids=["Eval", "root"])
@pytest.mark.parametrize("use_parent", [False, True], ids=["folder", "parent"])
def test_inshop_query_gallery(tmp_path, in_eval, use_parent):
    d = make_inshop(tmp_path, in_eval)
    s = build_datasets("inshop", tmp_path if use_parent else d, image_size=8)
    assert (len(s.train), len(s.query), len(s.gallery), len(s.test)) == (3, 3, 3, 6)
    assert s.train_class_names == ["id_00000002", "id_00000007"] and s.train.labels.tolist() == [0, 0, 1]
    assert s.test_class_names == ["id_00000001", "id_00000009"]
    assert s.query.labels.tolist() == [0, 1, 1] and s.gallery.labels.tolist() == [0, 0, 1]
    assert s.test.labels.tolist() == [0, 1, 1, 0, 0, 1]
    assert s.super_class_names == ["MEN/Denim", "WOMEN/Dresses", "WOMEN/Skirts"]
    assert s.train_super_labels == [1, 0] and s.test_super_labels == [0, 2]
    assert s.gallery[2][0].shape == (3, 8, 8)


def test_inshop_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"expected .*Eval/list_eval_partition.txt"):
        build_datasets("inshop", tmp_path)
    d = make_inshop(tmp_path)
    listing = d / "Eval" / "list_eval_partition.txt"
    listing.write_text(listing.read_text().replace("gallery", "val"))
    with pytest.raises(DatasetError, match="unknown evaluation_status 'val'"):
        build_datasets("inshop", d)
    make_inshop(tmp_path)
    (d / "img" / INSHOP[-1][0]).unlink()
    with pytest.raises(DatasetError, match="expected image .*03_2_side.jpg"):
        build_datasets("inshop", d)


# ---------------------------------------------------------------- label noise through build_datasets
def test_label_noise_applies_to_train_only(tmp_path):
    d = make_sop(tmp_path)
    clean = build_datasets("sop", d)
    noisy = build_datasets("sop", d, label_noise=1.0, seed=3)
    assert torch.equal(noisy.train.clean_labels, clean.train.labels)
    assert (noisy.train.labels != clean.train.labels).all() and noisy.train.noise_mask.all()
    assert torch.equal(noisy.test.labels, clean.test.labels) and not hasattr(noisy.test, "clean_labels")
    assert noisy.train[0][1] == int(noisy.train.labels[0])  # items carry the noisy label


def test_inshop_root_messages(tmp_path):
    with pytest.raises(DatasetError, match="In-Shop needs a data root"):
        build_datasets("inshop")
    with pytest.raises(DatasetError, match="is not a folder"):
        build_datasets("inshop", tmp_path / "missing")


# ---------------------------------------------------------------- list entries and files


@pytest.mark.parametrize("entry", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "a\\..\\..\\x.jpg"])
def test_entries_outside_the_data_folder_are_refused(tmp_path, entry):
    from hyperdml.data.folders import entry_path

    with pytest.raises(DatasetError, match="points outside the data folder"):
        entry_path(tmp_path, entry, tmp_path / "list.txt", "X")
    assert entry_path(tmp_path, "a/b..c/x.jpg", tmp_path / "list.txt", "X") == str(tmp_path / "a" / "b..c" / "x.jpg")


def test_sop_and_inshop_refuse_entries_outside_their_folder(tmp_path):
    d = make_sop(tmp_path)
    f = d / "Ebay_train.txt"
    f.write_text(f.read_text().replace("bicycle_final/", "../../", 1))
    with pytest.raises(DatasetError, match=r"entry '\.\./\.\./.*Ebay_train.txt points outside"):
        build_datasets("sop", d)
    d = make_inshop(tmp_path / "i", in_eval=True)
    f = d / "Eval" / "list_eval_partition.txt"
    f.write_text(f.read_text().replace("img/", "/abs/", 1))
    with pytest.raises(DatasetError, match="'/abs/.*points outside"):
        build_datasets("inshop", d)
