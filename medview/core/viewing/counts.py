"""How many images a series or case holds, in words: a 30-frame ultrasound cine is one image of 30 frames,
not 30 images, and the worklist, the series strip and their tooltips say so."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from medview.core.dicom.model import Stack

# modalities whose multi-frame images are loops played as cine; elsewhere (an enhanced CT, a tomosynthesis)
# a multi-frame image is called that
CINE_MODALITIES = frozenset({"US", "XA", "RF", "ES", "IVUS", "IVOCT", "OCT", "XC", "GM"})


@dataclass(frozen=True)
class ImageCount:
    images: int = 0  # single-frame images
    multiframe: int = 0  # multi-frame images (cines)
    multiframe_frames: int = 0  # the frames of those
    cine: bool = False  # every multi-frame image is of a cine modality

    @property
    def frames(self) -> int:
        """Everything one scrolls through: each single-frame image and each frame of the others."""
        return self.images + self.multiframe_frames


def count_images(stacks: Iterable[Stack]) -> ImageCount:
    images = multiframe = multiframe_frames = 0
    cine = True
    for stack in stacks:
        for inst in stack.instances:
            if inst.frames > 1:
                multiframe += 1
                multiframe_frames += inst.frames
                cine = cine and (inst.modality or stack.modality) in CINE_MODALITIES
            else:
                images += 1
    return ImageCount(images, multiframe, multiframe_frames, cine and multiframe > 0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def count_short(count: ImageCount) -> str:
    """For a narrow cell: "12 im", "30 fr" (one or more cines), "5 im, 60 fr" (both)."""
    if not count.multiframe:
        return f"{count.images} im"
    if not count.images:
        return f"{count.multiframe_frames} fr"
    return f"{count.images} im, {count.multiframe_frames} fr"


def count_words(count: ImageCount) -> str:
    """In full: "12 images", "1 cine, 30 frames", "5 images and 2 cines, 60 frames"."""
    if not count.multiframe:
        return _plural(count.images, "image")
    kind = _plural(count.multiframe, "cine" if count.cine else "multi-frame image")
    multi = f"{kind}, {_plural(count.multiframe_frames, 'frame')}"
    return f"{_plural(count.images, 'image')} and {multi}" if count.images else multi
