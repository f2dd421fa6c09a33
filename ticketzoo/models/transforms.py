"""The input pipeline a ticket's card describes, as a torchvision transform of a PIL image.

It mirrors what ``finetune`` feeds the network (:mod:`ticketzoo.data.images` and
:mod:`ticketzoo.data.cache`): the image converted to RGB or gray, its shorter side resized
to 256/224 of the input size and center-cropped square, then a center crop of the input
size (training: a random crop and a horizontal flip), scaled to [0, 1] and normalised.
"""

from __future__ import annotations

from typing import Sequence


def working_size(input_size: int) -> int:
    """The side images are resized to before the crop (256 for 224, as for ImageNet)."""
    return round(input_size * 256 / 224)


def image_transform(input_size: int, channels: int, mean: Sequence[float], std: Sequence[float], *,
                    train: bool = False):
    """A ``torchvision.transforms.Compose`` from a PIL image to a normalised float tensor."""
    from torchvision import transforms as T

    resize = working_size(input_size)
    crop = [T.RandomCrop(input_size), T.RandomHorizontalFlip()] if train else [T.CenterCrop(input_size)]
    return T.Compose([
        _ToChannels(channels),
        T.Resize(resize, interpolation=T.InterpolationMode.BILINEAR),
        T.CenterCrop(resize),
        *crop,
        T.ToTensor(),
        T.Normalize(list(mean), list(std)),
    ])


class _ToChannels:
    """PIL image -> RGB or gray, as ticketzoo's image reader converts it (a class, not a
    lambda, so the transform pickles into DataLoader workers)."""

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, img):
        from ticketzoo.data.images import to_channels  # the one conversion rule

        return to_channels(img, self.channels)

    def __repr__(self) -> str:
        return f"ToChannels({self.channels})"
