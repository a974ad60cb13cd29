"""The native ImageFolder loader: the DNA loader's audit (exactly-once sharding, seeded order,
bit-identical resume, thread determinism) on image folders, transforms, decoding vs PIL, and
clear errors for bad folders and images."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from glmx.data import ImageFolderLoader, decode_image
from glmx.errors import DataError

Image = pytest.importorskip("PIL.Image", reason="pillow is the vision extra (glmx[vision])")
datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn is glmx[vision]")


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """The two real photos shipped with scikit-learn (427x640 RGB)."""
    return [
        np.asarray(Image.open(f).convert("RGB")) for f in datasets.load_sample_images().filenames
    ]


def make_folder(
    root: Path,
    photos: list[np.ndarray],
    counts: dict[str, int],
    split: str = "train",
    size: tuple[int, int] = (20, 24),
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """``root/split/CLASS/NNN.fmt``: crops of the real photos, ``counts[CLASS]`` per class."""
    rng = np.random.RandomState(seed)
    h, w = size
    for c, n in counts.items():
        d = root / split / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            p = photos[rng.randint(2)]
            y, x = rng.randint(p.shape[0] - h), rng.randint(p.shape[1] - w)
            Image.fromarray(p[y : y + h, x : x + w]).save(d / f"{i:03d}.{fmt}")
    return root


def counts_for(n: int) -> dict[str, int]:
    k = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    return {c: m for c, m in zip("abc", k, strict=True) if m}


def test_classes_labels_and_folder_order(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, {"cat": 3, "ant": 2, "bee": 1})
    loader = ImageFolderLoader(root, "train", 16, 4, train_transforms=False, shuffle=False)
    assert loader.classes == ["ant", "bee", "cat"]
    assert loader.num_samples == 6 and len(loader) == 2
    batches = list(loader)
    idx = torch.cat([b["sample_index"] for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    assert idx[:6].tolist() == list(range(6)) and (idx[6:] == -1).all()
    assert labels[:6].tolist() == [0, 0, 1, 2, 2, 2] and (labels[6:] == -100).all()
    assert loader.item(2) == (str(root / "train" / "bee" / "000.png"), 1)
    b = batches[0]
    assert b["pixel_values"].shape == (4, 3, 16, 16) and b["pixel_values"].dtype == torch.float32
    assert b["labels"].dtype == torch.int64 and b["sample_index"].dtype == torch.int64


def test_subfolders_of_a_class_are_read_in_torchvisions_order(tmp_path: Path, photos) -> None:
    """torchvision's ImageFolder walks each class folder recursively, links followed; sample i
    must be the same file in both. A link back to an enclosing folder is not walked again."""
    tv = pytest.importorskip("torchvision.datasets", reason="torchvision orders the reference")
    make_folder(tmp_path, photos, {"cat": 2, "dog": 1})
    for rel, n in (("cat/sub", 2), ("cat/sub/deeper", 1), ("cat/sub-x", 1), ("only/nested", 2)):
        make_folder(tmp_path, photos, {rel: n}, seed=len(rel))
    ref = tv.ImageFolder(str(tmp_path / "train"))
    (tmp_path / "train" / "cat" / "sub" / "loop").symlink_to(tmp_path / "train" / "cat")
    loader = ImageFolderLoader(tmp_path, "train", 8, 4, shuffle=False)
    assert loader.classes == ref.classes == ["cat", "dog", "only"]
    got = [loader.item(i) for i in range(loader.num_samples)]
    assert got == [(str(Path(p)), c) for p, c in ref.samples]
    assert len(got) == 9


@pytest.mark.parametrize("n", [1, 7, 23])
def test_every_image_exactly_once_equal_batches(tmp_path: Path, photos, n: int) -> None:
    root = make_folder(tmp_path, photos, counts_for(n), size=(12, 12))
    for world in range(1, 6):
        seen: Counter[int] = Counter()
        lengths = set()
        for rank in range(world):
            loader = ImageFolderLoader(
                root, "train", 8, 3, seed=5, rank=rank, world_size=world, num_threads=1
            )
            got = list(loader)
            lengths.add(len(got))
            assert len(got) == len(loader)
            for b in got:
                idx = b["sample_index"]
                pad = idx == -1
                assert (b["labels"][pad] == -100).all() and (b["pixel_values"][pad] == 0).all()
                seen.update(idx[~pad].tolist())
        assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}, (n, world)
        assert len(lengths) == 1, (n, world, lengths)


def _epoch(loader: ImageFolderLoader) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def test_seeded_order_changes_per_epoch_and_seed(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, counts_for(30), size=(12, 12))

    def order(seed: int, epoch: int) -> list[int]:
        loader = ImageFolderLoader(root, "train", 8, 6, seed=seed, num_threads=1)
        loader.set_epoch(epoch)
        return torch.cat([b["sample_index"] for b in loader]).tolist()

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert sorted(order(1, 3)) == list(range(30))
    ev = ImageFolderLoader(root, "val" if False else "train", 8, 6, train_transforms=False)
    assert torch.cat([b["sample_index"] for b in ev]).tolist() == list(range(30))


def test_resume_is_bit_identical_across_world_sizes(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, counts_for(26), size=(20, 24))
    kw = dict(image_size=12, batch_size=4, seed=3, num_threads=2)
    ref = ImageFolderLoader(root, "train", **kw)
    ref.set_epoch(1)
    full = _epoch(ref)
    part = ImageFolderLoader(root, "train", **kw)
    part.set_epoch(1)
    it = iter(part)
    head = [next(it) for _ in range(3)]
    state = part.state_dict()
    assert state["epoch"] == 1 and state["consumed"] == 12
    resumed = ImageFolderLoader(root, "train", **kw)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # a no-op after load_state_dict, as for the DNA loader
    rest = _epoch(resumed)
    assert len(head) + len(rest) == len(full)
    for a, b in zip(head + rest, full, strict=True):
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert resumed.state_dict()["epoch"] == 2 and resumed.state_dict()["consumed"] == 0
    # the same position on two ranks reads the rest of the global order exactly once
    seen = []
    for rank in range(2):
        r = ImageFolderLoader(root, "train", rank=rank, world_size=2, **kw)
        r.load_state_dict(state)
        for b in r:
            seen += b["sample_index"][b["sample_index"] >= 0].tolist()
    want = torch.cat([b["sample_index"] for b in full[3:]]).tolist()
    assert sorted(seen) == sorted(want)
    with pytest.raises(DataError, match="resume with the same data and seed"):
        ImageFolderLoader(root, "train", **{**kw, "seed": 4}).load_state_dict(state)


def test_output_independent_of_thread_count_and_prefetch(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, counts_for(17), fmt="jpg")
    a = _epoch(ImageFolderLoader(root, "train", 16, 5, seed=2, num_threads=1, prefetch=1))
    b = _epoch(ImageFolderLoader(root, "train", 16, 5, seed=2, num_threads=3, prefetch=8))
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_batches_held_by_the_caller_keep_their_values(tmp_path: Path, photos) -> None:
    """Float batches live in recycled host memory: one the caller still references is never
    reused for a later batch or epoch, even when the caller writes into later ones."""
    root = make_folder(tmp_path, photos, counts_for(24), fmt="jpg")
    loader = ImageFolderLoader(root, "train", 16, 4, seed=1, prefetch=1, num_threads=2)
    held, copies = [], []
    for b in loader:
        held.append(b["pixel_values"])
        copies.append(b["pixel_values"].clone())
    for _ in range(3):
        for b in loader:
            b["pixel_values"].fill_(7.0)
    assert len({p.data_ptr() for p in held}) == len(held) == 6
    assert all(torch.equal(h, c) for h, c in zip(held, copies, strict=True))


def test_identity_resize_normalizes_exactly_and_flip_mirrors(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, {"a": 3}, size=(16, 16))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ev = ImageFolderLoader(
        root, "train", 16, 3, train_transforms=False, shuffle=False, mean=mean, std=std
    )
    px = next(iter(ev))["pixel_values"]
    for i in range(3):
        raw = np.asarray(Image.open(root / "train" / "a" / f"{i:03d}.png").convert("RGB"))
        want = (
            torch.from_numpy(raw).permute(2, 0, 1).float() / 255 - torch.tensor(mean).view(3, 1, 1)
        ) / torch.tensor(std).view(3, 1, 1)
        torch.testing.assert_close(px[i], want, atol=1e-5, rtol=0)
    flip = ImageFolderLoader(
        root,
        "train",
        16,
        3,
        train_transforms={"scale": (1.0, 1.0), "ratio": (1.0, 1.0), "hflip_prob": 1.0},
        shuffle=False,
        mean=mean,
        std=std,
    )
    torch.testing.assert_close(next(iter(flip))["pixel_values"], px.flip(-1), atol=1e-5, rtol=0)
    u8 = ImageFolderLoader(
        root,
        "train",
        16,
        3,
        train_transforms=False,
        shuffle=False,
        mean=mean,
        std=std,
        wire_dtype="uint8",
    )
    got = next(iter(u8))["pixel_values"]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, px, atol=1e-5, rtol=0)


def test_center_crop_and_random_crop_stay_close_to_torchvision(tmp_path: Path, photos) -> None:
    """Resize + center crop of a real photo against torchvision's PIL path (both bilinear with
    antialiasing; ours stays in float, PIL rounds between passes)."""
    tv = pytest.importorskip("torchvision.transforms", reason="torchvision is glmx[bench]")
    d = tmp_path / "train" / "x"
    d.mkdir(parents=True)
    Image.fromarray(photos[0]).save(d / "p.png")
    ours = ImageFolderLoader(tmp_path, "train", 64, 1, train_transforms=False, resize_size=73)
    got = next(iter(ours))["pixel_values"][0]
    t = tv.Compose(
        [
            tv.Resize(73),
            tv.CenterCrop(64),
            tv.ToTensor(),
            tv.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    want = t(Image.fromarray(photos[0]))
    assert (got - want).abs().max() < 0.05 and (got - want).abs().mean() < 0.01


def test_decoding_agrees_with_pil_on_real_photos(tmp_path: Path, photos) -> None:
    for k, p in enumerate(photos):
        Image.fromarray(p).save(tmp_path / f"{k}.png")
        png = decode_image(tmp_path / f"{k}.png").numpy()
        assert np.array_equal(png, p), "PNG decodes exactly"
        Image.fromarray(p).convert("L").save(tmp_path / f"{k}g.jpg", quality=90)
        ref = np.asarray(Image.open(tmp_path / f"{k}g.jpg").convert("RGB")).astype(int)
        diff = np.abs(decode_image(tmp_path / f"{k}g.jpg").numpy().astype(int) - ref)
        assert diff.max() <= 1, "grayscale JPEG: same IDCT within 1"
        for sub in (0, 2):  # 4:4:4 and 4:2:0 chroma (docs/images.md: color conversion,
            # chroma upsampling differ from libjpeg-turbo's by a few levels on few pixels)
            Image.fromarray(p).save(tmp_path / f"{k}.jpg", quality=90, subsampling=sub)
            ref = np.asarray(Image.open(tmp_path / f"{k}.jpg").convert("RGB")).astype(int)
            diff = np.abs(decode_image(tmp_path / f"{k}.jpg").numpy().astype(int) - ref)
            assert diff.max() <= 4 and diff.mean() < 0.25 and (diff > 1).mean() < 0.06


def test_folder_errors_are_clear(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, {"a": 2, "b": 2})
    make_folder(tmp_path, photos, {"a": 1}, split="val")
    (tmp_path / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/c holds no image"):
        ImageFolderLoader(root, "train", 8, 2)
    (tmp_path / "train" / "c").rmdir()
    classes = ImageFolderLoader(root, "train", 8, 2).classes
    with pytest.raises(DataError, match=r'\["b"\] missing from .*val'):
        ImageFolderLoader(root, "val", 8, 2, classes=classes)
    with pytest.raises(DataError, match=r"split 'test' not found"):
        ImageFolderLoader(root, "test", 8, 2)
    with pytest.raises(DataError, match="image_size"):
        ImageFolderLoader(root, "train", 0, 2)
    with pytest.raises(DataError, match="unknown train_transforms"):
        ImageFolderLoader(root, "train", 8, 2, train_transforms={"flip": 1})
    # Out-of-range numbers are DataErrors naming the argument: never an OverflowError from the
    # binding, nor a process abort on a huge allocation (prefetch queue, batch buffer).
    for kwargs, needle in (
        ({"seed": -1}, "seed"),
        ({"num_threads": -1}, "num_threads"),
        ({"num_threads": 10**6}, "num_threads"),
        ({"prefetch": 2**40}, "prefetch"),
        ({"batch_size": 2**40}, "GiB per batch"),
        ({"image_size": -1}, "image_size"),
        ({"image_size": (8, 2**40)}, "image_size"),
        ({"resize_size": -3}, "resize_size"),
    ):
        args = {"image_size": 8, "batch_size": 2, **kwargs}
        with pytest.raises(DataError, match=needle):
            ImageFolderLoader(root, "train", **args)
    # numpy integers are integers (a config or a sweep may hand them over)
    assert ImageFolderLoader(root, "train", 8, np.int64(2), seed=np.int32(3)).batch_size == 2


def test_bad_image_names_the_file_or_is_skipped_and_counted(tmp_path: Path, photos) -> None:
    root = make_folder(tmp_path, photos, {"a": 3, "b": 3})
    bad = root / "train" / "b" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    loader = ImageFolderLoader(root, "train", 8, 4, num_threads=1)
    with pytest.raises(DataError, match=r"cannot decode image .*b/001\.png") as err:
        list(loader)
    assert "\n" not in str(err.value) and 'on_bad_image="skip"' in str(err.value)
    skip = ImageFolderLoader(root, "train", 8, 4, on_bad_image="skip", shuffle=False)
    got = list(skip)
    idx = torch.cat([b["sample_index"] for b in got])
    assert 4 not in idx.tolist() and sorted(idx[idx >= 0].tolist()) == [0, 1, 2, 3, 5]
    assert skip.bad_images == 1
