"""``ImageFolderLoader``: image classification batches from ``ROOT/SPLIT/CLASS/*.{jpg,png}``,
decoded and augmented in native threads with the DNA loader's order, sharding and resume."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from glmx import _glmx
from glmx.data.loader import DnaMlmLoader, _dist_defaults
from glmx.errors import DataError
from glmx.trainer.module import DataModule

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TRAIN_KEYS = {"scale", "ratio", "hflip_prob"}


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    hw = tuple(int(v) for v in image_size)
    if len(hw) != 2:
        raise DataError(f"image_size must be an int or (height, width), got {image_size!r}")
    if not all(1 <= v <= 8192 for v in hw):
        raise DataError(f"image_size must be between 1 and 8192, got {image_size!r}")
    return hw  # type: ignore[return-value]


class ImageFolderLoader:
    """Batches of one split of an ImageFolder tree, built in native code.

    Layout: ``root/split/CLASS/*.jpg|*.jpeg|*.png``; class index = position in the sorted folder
    names of ``train`` (pass ``classes`` to pin them: every split must hold exactly those
    folders). Iterating yields dicts: ``pixel_values`` (float32 ``[B, 3, H, W]``, normalized
    with ``mean``/``std``), ``labels`` (int64 ``[B]``; -100 on padding rows) and
    ``sample_index`` (int64 ``[B]``, the image's index in :meth:`item` order; -1 marks a padding
    row or a skipped unreadable image).

    Args:
        root: the ImageFolder root.
        split: sub-folder (``"train"``, ``"val"``, ``"test"``).
        image_size: output size, an int or ``(height, width)``.
        batch_size: rows per batch on this rank.
        train_transforms: ``True`` (default for ``split == "train"``): random resized crop and
            horizontal flip, seeded per (seed, epoch, image); ``False``: resize the shorter side
            to ``resize_size`` and center-crop (evaluation). A mapping turns them on and sets
            ``scale`` (default ``(0.08, 1.0)``), ``ratio`` (``(3/4, 4/3)``) and ``hflip_prob``
            (``0.5``).
        shuffle: a fresh seeded permutation every epoch (default: ``train_transforms``).
        seed: seed of order and augmentation.
        rank, world_size: this process's shard (default from ``torch.distributed``); every image
            is read exactly once per epoch across ranks, every rank gets the same number of
            batches (short tails are padded).
        num_threads: threads of the private decode pool.
        device: ``"cpu"`` or a CUDA device: host batches are pinned and copied on a side stream
            one batch ahead.
        resize_size: evaluation resize (default ``round(size * 256 / 224)``, torchvision's
            ImageNet recipe; equal to the size for tiny images).
        mean, std: normalization (default ImageNet's).
        wire_dtype: ``"uint8"`` builds pixels as uint8 on the host (4x fewer bytes to copy) and
            normalizes on the device; batches still hold float32.
        on_bad_image: ``"error"`` (default) raises :class:`glmx.DataError` naming the file;
            ``"skip"`` turns the image's row into a padding row and counts it
            (:attr:`bad_images`).
        classes: the expected class folders (default: the split's own sorted folders).
        drop_last, prefetch: as for :class:`glmx.data.DnaMlmLoader`.

    Position: ``set_epoch``, ``state_dict`` and ``load_state_dict`` behave exactly as the DNA
    loader's: a resumed stream is bit-identical to an uninterrupted one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        train_transforms: bool | Mapping[str, Any] | None = None,
        shuffle: bool | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        num_threads: int = 2,
        device: str | torch.device = "cpu",
        *,
        resize_size: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        wire_dtype: str = "float32",
        on_bad_image: str = "error",
        classes: Sequence[str] | None = None,
        drop_last: bool = False,
        prefetch: int = 4,
    ) -> None:
        height, width = _size(image_size)
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
            ("num_threads", num_threads, 1),
            ("prefetch", prefetch, 1),
        ):
            # The native loader takes unsigned integers; say so instead of an OverflowError.
            try:
                number = operator.index(value)  # ints and numpy integers, not floats
            except TypeError:
                number = None
            if isinstance(value, bool) or number is None or not low <= number < 2**63:
                raise DataError(f"{name} must be an integer >= {low}, got {value!r}")
        if wire_dtype not in ("float32", "uint8"):
            raise DataError(f"wire_dtype must be 'float32' or 'uint8', not {wire_dtype!r}")
        if on_bad_image not in ("error", "skip"):
            raise DataError(f"on_bad_image must be 'error' or 'skip', not {on_bad_image!r}")
        if len(mean) != 3 or len(std) != 3:
            raise DataError(f"mean and std need 3 values (RGB), got {mean!r} and {std!r}")
        if train_transforms is None:
            train_transforms = split == "train"
        aug: dict[str, Any] = {}
        if isinstance(train_transforms, Mapping):
            unknown = set(train_transforms) - _TRAIN_KEYS
            if unknown:
                raise DataError(
                    f"unknown train_transforms key(s) {sorted(unknown)}; "
                    f"known: {sorted(_TRAIN_KEYS)}"
                )
            aug = dict(train_transforms)
            train_transforms = True
        self.train = bool(train_transforms)
        if resize_size is None:
            side = max(height, width)
            resize_size = max(side, round(side * 256 / 224)) if side >= 64 else side
        if not isinstance(resize_size, int) or not 1 <= resize_size < 2**31:
            raise DataError(f"resize_size must be a positive integer, got {resize_size!r}")
        rank, world_size = _dist_defaults(rank, world_size)
        self.root, self.split, self.seed = os.fspath(root), split, seed
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda" and torch.cuda.is_available()
        if self.device.type == "cuda" and not self._cuda:
            raise DataError(f"device={str(self.device)!r} requested but CUDA is not available")
        self._uint8 = wire_dtype == "uint8"
        self._mean, self._std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._native = _glmx.NativeImageLoader(
            self.root,
            split,
            classes=None if classes is None else [str(c) for c in classes],
            height=height,
            width=width,
            train=self.train,
            resize=int(resize_size),
            scale=tuple(float(v) for v in aug.get("scale", (0.08, 1.0))),
            ratio=tuple(float(v) for v in aug.get("ratio", (3 / 4, 4 / 3))),
            hflip_prob=float(aug.get("hflip_prob", 0.5)),
            mean=list(self._mean),
            std=list(self._std),
            batch_size=batch_size,
            shuffle=self.train if shuffle is None else bool(shuffle),
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            num_threads=num_threads,
            prefetch=prefetch,
            pin_memory=self._cuda,
            uint8=self._uint8,
            skip_bad=on_bad_image == "skip",
        )
        # The device path holds one batch ahead; shared with DnaMlmLoader (see _device_batches).
        self._compact = False
        self._lag: tuple[int, int] | None = None
        self._norm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    # The stream position machinery is the DNA loader's, unchanged: the same (epoch, consumed)
    # bookkeeping, the same one-batch-ahead CUDA side-stream copy and the same state format.
    _device_batches = DnaMlmLoader._device_batches
    epoch = DnaMlmLoader.epoch
    set_epoch = DnaMlmLoader.set_epoch
    state_dict = DnaMlmLoader.state_dict
    load_state_dict = DnaMlmLoader.load_state_dict

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank)."""
        return len(self._native)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the current position to the end of the epoch (evaluation loaders
        restart at the first batch on every ``iter()``)."""
        if not self.train:
            self._lag = None
            self._native.seek(0, 0)
        elif self._lag is not None:
            self._native.seek(*self._lag)
            self._lag = None
        it: Iterator[dict[str, torch.Tensor]] = iter(self._native)
        if self._cuda:
            it = self._device_batches(it)
        if self._uint8:
            return (self._normalize(b) for b in it)
        return it

    def _normalize(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        px = batch["pixel_values"]
        if px.device not in self._norm:
            m = torch.tensor(self._mean, device=px.device).view(1, 3, 1, 1) * 255.0
            s = torch.tensor(self._std, device=px.device).view(1, 3, 1, 1) * 255.0
            self._norm[px.device] = (m, s)
        m, s = self._norm[px.device]
        batch["pixel_values"] = (px.float() - m) / s
        return batch

    # -- inspection ---------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Number of images in the split (all ranks together)."""
        return self._native.num_samples

    @property
    def classes(self) -> list[str]:
        """Class names; ``labels`` index this list."""
        return list(self._native.classes)

    @property
    def bad_images(self) -> int:
        """Unreadable images skipped so far (``on_bad_image="skip"``)."""
        return self._native.bad_images

    def item(self, index: int) -> tuple[str, int]:
        """(file path, label) of image ``index`` (the value ``sample_index`` holds)."""
        return self._native.item(index)

    def __repr__(self) -> str:
        return (
            f"ImageFolderLoader(root={self.root!r}, split={self.split!r}, "
            f"num_samples={self.num_samples}, classes={len(self.classes)}, "
            f"batch_size={self.batch_size}, rank={self.rank}, world_size={self.world_size}, "
            f"train={self.train}, device={str(self.device)!r})"
        )


def decode_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decodes a JPEG or PNG file with the loader's decoder: uint8 ``[H, W, 3]`` (RGB)."""
    return _glmx.decode_image(os.fspath(path))


class ImageFolderDataModule(DataModule):
    """Loaders over ``root/{train,val,test}/CLASS/*.jpg|*.png`` (``test`` optional): training
    augmentation on ``train``, resize + center crop on the others, the classes of ``train``
    required in every split.

    Args:
        root: the ImageFolder root.
        image_size: model input size.
        batch_size: rows per batch per device; ``eval_batch_size`` defaults to it.
        seed: order / augmentation seed.
        num_threads: native decode threads per loader.
        device: ``"cpu"`` or a CUDA device (batches are copied there asynchronously).
        train_transforms: as :class:`ImageFolderLoader` (``True`` or a mapping of ``scale``,
            ``ratio``, ``hflip_prob``).
        val_split, test_split: folder names of the evaluation splits.
        loader_kwargs: further :class:`ImageFolderLoader` arguments for every loader (``mean``,
            ``std``, ``resize_size``, ``wire_dtype``, ``on_bad_image``, ``prefetch``).
        prepare: when ``root`` has no ``train`` folder, :meth:`prepare_data` writes a data set
            there: ``{"recipe": "digits", "size": 32, "seed": 0}`` (scikit-learn's digits).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int | Sequence[int] = 224,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        seed: int = 42,
        num_threads: int = 2,
        device: str = "cpu",
        train_transforms: bool | Mapping[str, Any] = True,
        val_split: str = "val",
        test_split: str = "test",
        loader_kwargs: Mapping[str, Any] | None = None,
        prepare: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.root = os.fspath(root)
        self.image_size, self.batch_size = image_size, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed, self.num_threads, self.device = seed, num_threads, device
        self.train_transforms = train_transforms
        self.splits = {"val": val_split, "test": test_split}
        self.loader_kwargs = dict(loader_kwargs or {})
        self.prepare = dict(prepare) if prepare else None
        self._loaders: dict[str, ImageFolderLoader | None] = {}

    def prepare_data(self) -> None:
        """Writes the ``prepare`` recipe's data set when ``root/train`` does not exist."""
        if self.prepare is None or os.path.isdir(os.path.join(self.root, "train")):
            return
        spec = dict(self.prepare)
        recipe = spec.pop("recipe", "digits")
        if recipe != "digits":
            raise DataError(f"prepare.recipe must be 'digits', not {recipe!r}")
        from glmx.image.digits import write_digits

        write_digits(self.root, **spec)

    @property
    def classes(self) -> list[str]:
        """Class names of the training split."""
        return self.train_dataloader().classes

    def _loader(self, split: str, train: bool) -> ImageFolderLoader | None:
        if split not in self._loaders:
            if not train and not os.path.isdir(os.path.join(self.root, split)):
                self._loaders[split] = None
                return None
            self._loaders[split] = ImageFolderLoader(
                self.root,
                split,
                self.image_size,
                self.batch_size if train else self.eval_batch_size,
                train_transforms=self.train_transforms if train else False,
                seed=self.seed,
                num_threads=self.num_threads,
                device=self.device,
                classes=None if train else self.classes,
                **self.loader_kwargs,
            )
        return self._loaders[split]

    def train_dataloader(self) -> ImageFolderLoader:
        """The training loader (shuffled, augmented)."""
        loader = self._loader("train", True)
        assert loader is not None
        return loader

    def val_dataloader(self) -> ImageFolderLoader | None:
        """The validation loader (``None`` without a ``val`` folder)."""
        return self._loader(self.splits["val"], False)

    def test_dataloader(self) -> ImageFolderLoader | None:
        """The test loader (``None`` without a ``test`` folder)."""
        return self._loader(self.splits["test"], False)
