"""The input pipeline a ticket's card declares, as a callable from a PIL image to a tensor.

Built from :class:`~ticketzoo.card.Preprocess` (:func:`ticketzoo.card.preprocess_of`) and the
arch's size, channels and statistics, with the training pipeline's own per-image code: the
image readers' :func:`~ticketzoo.data.images.working_image`, then the crop and normalisation
of :mod:`ticketzoo.data.cache`. An image file opened with PIL thus gives the tensor the eval
split of ``find`` or ``finetune`` held for it (images of named datasets such as MNIST are
resampled there by torch, which agrees when they are already at working size).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ticketzoo.errors import ConfigError


def image_transform(arch, preprocess, *, train: bool = False) -> "ImageTransform":
    """The transform of an :class:`~ticketzoo.card.ArchConfig` and a resolved
    :class:`~ticketzoo.card.Preprocess` (its ``resize`` in pixels); ``train``: random crop and flip."""
    return ImageTransform(channels=arch.in_channels, input_size=arch.input_size, resize=preprocess.resize,
                          pad=preprocess.pad, flip=preprocess.flip, mean=arch.mean, std=arch.std, train=train)


class ImageTransform:
    """PIL image -> float ``[C, input_size, input_size]``: working square, crop, normalisation.

    Eval takes the central crop; train takes a random crop of the square zero-padded by
    ``pad`` and, with ``flip``, flips it with probability 1/2, drawing from torch's default
    generator as the training datasets do. A class, not a lambda, so it pickles into
    DataLoader workers. Pass the image as opened (not loaded): a JPEG is then decoded at the
    reduced scale the training readers used.
    """

    def __init__(self, *, channels: int, input_size: int, resize: int, pad: int, flip: bool,
                 mean: Sequence[float], std: Sequence[float], train: bool = False):
        # data/ sits below models/ in the package's order: imported where used, as ticket.py does.
        from ticketzoo.data.cache import center_offset, normalizer

        if not 1 <= input_size <= resize:
            raise ConfigError(f"the working size {resize} is smaller than the input size {input_size}",
                              field="resize", value=resize)
        self.channels, self.input_size, self.resize = channels, input_size, resize
        self.pad, self.flip, self.train = pad, flip, train
        self.scale, self.shift = normalizer(mean, std, channels)
        self.center = center_offset(resize, input_size)

    def __call__(self, img) -> torch.Tensor:
        from ticketzoo.data.cache import normalize
        from ticketzoo.data.images import working_image

        array = np.array(working_image(img, channels=self.channels, resize=self.resize))
        x = torch.from_numpy(array.reshape(self.resize, self.resize, -1)).permute(2, 0, 1)
        k = self.input_size
        if not self.train:
            c = self.center
            return normalize(x[:, c : c + k, c : c + k], self.scale, self.shift)
        if self.pad:
            x = torch.nn.functional.pad(x, (self.pad,) * 4)
        top, left = torch.randint(0, x.shape[-1] - k + 1, (2,)).tolist()
        x = x[:, top : top + k, left : left + k]
        if self.flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return normalize(x, self.scale, self.shift)

    def __repr__(self) -> str:
        how = f"pad {self.pad}, random crop {self.input_size}" + (", flip" if self.flip else "") if self.train \
            else f"center crop {self.input_size}"
        return f"ImageTransform(channels {self.channels}, working size {self.resize}, {how})"
