"""Host-side image preprocessing and augmentation on numpy batches.

Every function takes and returns a float32 NHWC batch and works on the whole batch at
once (no per-image Python loops). Random functions take an explicit
``numpy.random.Generator``; nothing reads a global RNG.

Synopsis:
    pre = Preprocessor(crop_hw=(32, 32), random_crop=True, crop_padding=4, flip=True,
                       cutout=16)
    rng = np.random.default_rng([seed, epoch, 1, batch_index])
    train_images = pre.train(images, rng)   # images: float32 [B, H, W, C] in [0, 1]
    eval_images = pre.eval(images)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _pad_or_crop_axis(images: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Centre-crops or symmetrically zero-pads one axis to ``size`` (TF's offsets)."""
    length = images.shape[axis]
    if length > size:
        start = (length - size) // 2
        return np.take(images, np.arange(start, start + size), axis=axis)
    if length < size:
        widths = [(0, 0)] * images.ndim
        before = (size - length) // 2
        widths[axis] = (before, size - length - before)
        return np.pad(images, widths)
    return images


def center_pad_or_crop(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Centre zero-pads or crops height and width to ``size``.

    Matches ``tf.image.resize_image_with_crop_or_pad``, AMLA's "pad to image_size".

    Args:
        images: [B, H, W, C].
        size: Target side, or (height, width).

    Returns:
        [B, height, width, C].
    """
    height, width = (size, size) if isinstance(size, int) else size
    return _pad_or_crop_axis(_pad_or_crop_axis(images, height, 1), width, 2)


def pad_images(images: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pads ``padding`` pixels on each side of height and width."""
    if padding <= 0:
        return images
    return np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def random_crop(images: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Crops a (height, width) window at an independent random offset per image.

    Images smaller than the window are first centre-padded to it.

    Args:
        images: [B, H, W, C].
        size: Crop (height, width).
        rng: Source of the offsets.

    Returns:
        [B, height, width, C].
    """
    crop_h, crop_w = size
    images = center_pad_or_crop(
        images, (max(images.shape[1], crop_h), max(images.shape[2], crop_w))
    )
    batch, height, width = images.shape[:3]
    top = rng.integers(0, height - crop_h + 1, size=batch)
    left = rng.integers(0, width - crop_w + 1, size=batch)
    windows = np.lib.stride_tricks.sliding_window_view(images, (crop_h, crop_w), axis=(1, 2))
    # windows: [B, H', W', C, crop_h, crop_w]; pick one window per image.
    chosen = windows[np.arange(batch), top, left]
    return np.ascontiguousarray(chosen.transpose(0, 2, 3, 1))


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips each image left-right with probability 1/2."""
    flip = rng.random(images.shape[0]) < 0.5
    flipped = images.copy()
    flipped[flip] = images[flip, :, ::-1]
    return flipped


def random_brightness(images: np.ndarray, max_delta: float, rng: np.random.Generator) -> np.ndarray:
    """Adds one delta ~ U[-max_delta, max_delta] per image (``tf.image.random_brightness``)."""
    delta = rng.uniform(-max_delta, max_delta, size=images.shape[0]).astype(np.float32)
    return images + delta[:, None, None, None]


def random_contrast(
    images: np.ndarray, lower: float, upper: float, rng: np.random.Generator
) -> np.ndarray:
    """Scales each image's deviation from its per-channel mean by a factor ~ U[lower, upper].

    Matches ``tf.image.random_contrast``.
    """
    factor = rng.uniform(lower, upper, size=images.shape[0]).astype(np.float32)
    factor = factor[:, None, None, None]
    mean = np.einsum("bhwc->bc", images)[:, None, None, :] / np.prod(images.shape[1:3])
    adjusted = images * factor
    adjusted += mean.astype(np.float32) * (1.0 - factor)
    return adjusted


def per_image_standardization(images: np.ndarray) -> np.ndarray:
    """Returns ``(x - mean) / max(std, 1/sqrt(N))`` per image, N = H*W*C.

    Matches ``tf.image.per_image_standardization``.
    """
    flat = images.reshape(images.shape[0], -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("bn,bn->b", centred, centred) / flat.shape[1])
    centred /= np.maximum(std, 1.0 / np.sqrt(flat.shape[1]))[:, None]
    return centred.reshape(images.shape).astype(np.float32, copy=False)


def cutout(images: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Zeroes one ``size`` x ``size`` square per image (DeVries & Taylor, 2017).

    The square's centre is uniform over the image and the square is clipped at the
    border, so near the edges less than ``size**2`` pixels are zeroed.

    Args:
        images: [B, H, W, C].
        size: Side of the square.
        rng: Source of the centres.

    Returns:
        [B, H, W, C] with the squares set to 0.
    """
    batch, height, width = images.shape[:3]
    top = rng.integers(0, height, size=batch) - size // 2
    left = rng.integers(0, width, size=batch) - size // 2
    rows = np.arange(height)[None, :]
    cols = np.arange(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return images * keep[..., None].astype(images.dtype)


@dataclass(frozen=True)
class Preprocessor:
    """The train and eval pipelines of one dataset, with every size resolved.

    Order (AMLA's, with cutout on the standardised image as in AMLA's stem):
    canvas (``image_size``) -> pad ``crop_padding`` + random crop, or centre crop, to
    ``crop_hw`` -> flip -> brightness -> contrast -> standardise -> cutout.
    Evaluation: canvas -> centre crop -> standardise.

    Attributes:
        image_size: Canvas size (0: keep the decoded size).
        crop_hw: Output (height, width); None keeps the canvas size.
        random_crop: Random crop for training.
        crop_padding: Padding before the random crop.
        flip: Random horizontal flips.
        cutout: Cutout square side (0: off).
        brightness: Max brightness delta (0: off).
        contrast: Contrast factor range half-width around 1 (0: off).
        standardize: Per-image standardisation.
    """

    image_size: int = 0
    crop_hw: tuple[int, int] | None = None
    random_crop: bool = False
    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    brightness: float = 0.0
    contrast: float = 0.0
    standardize: bool = True

    def output_hw(self, decoded_hw: tuple[int, int]) -> tuple[int, int]:
        """Returns the (height, width) of preprocessed images decoded at ``decoded_hw``."""
        if self.crop_hw:
            return tuple(self.crop_hw)
        if self.image_size:
            return (self.image_size, self.image_size)
        return tuple(decoded_hw)

    def _canvas(self, images: np.ndarray) -> np.ndarray:
        return center_pad_or_crop(images, self.image_size) if self.image_size else images

    def _crop_hw(self, images: np.ndarray) -> tuple[int, int]:
        return tuple(self.crop_hw) if self.crop_hw else images.shape[1:3]

    def train(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augments a training batch, float32 [B, H, W, C] in [0, 1]."""
        images = self._canvas(images)
        crop_hw = self._crop_hw(images)
        if self.random_crop:
            images = random_crop(pad_images(images, self.crop_padding), crop_hw, rng)
        else:
            images = center_pad_or_crop(images, crop_hw)
        if self.flip:
            images = random_flip(images, rng)
        if self.brightness:
            images = random_brightness(images, self.brightness, rng)
        if self.contrast:
            images = random_contrast(images, 1.0 - self.contrast, 1.0 + self.contrast, rng)
        if self.standardize:
            images = per_image_standardization(images)
        if self.cutout:
            images = cutout(images, self.cutout, rng)
        return images.astype(np.float32, copy=False)

    def eval(self, images: np.ndarray) -> np.ndarray:
        """Preprocesses an evaluation batch, float32 [B, H, W, C] in [0, 1]."""
        images = self._canvas(images)
        images = center_pad_or_crop(images, self._crop_hw(images))
        if self.standardize:
            images = per_image_standardization(images)
        return images.astype(np.float32, copy=False)
