"""Glyph identities: the letters, digits and Greek and Cyrillic characters of the fonts matplotlib ships.

An identity is a character; its images are the character as drawn by 16 typefaces (DejaVu Sans,
Sans Mono and Serif, and STIX General, each regular, bold, italic and bold italic, all shipped inside
the matplotlib package, so nothing is downloaded), each rendered at 16 x 16 pixels and varied by a
random affine transform (rotation, scale, shear, shift), stroke thickening and pixel noise. It plays
the role of a face data set: many identities, each seen under many "appearances" (typefaces), and
identities held out of training entirely for open-set verification.

Characters that look alike in most typefaces (Latin ``A`` and Cyrillic ``А``, ``0`` and ``O``, ``l``
and ``1``, ...) are merged: a character is kept only if the median over typefaces of its image's
cosine similarity to every character already kept is below 0.9. About 120 identities remain.
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SIZE = 16  # pixels
TYPEFACES: tuple[str, ...] = (
    *(f"DejaVuSans{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSansMono{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSerif{s}.ttf" for s in ("", "-Bold", "-Italic", "-BoldItalic")),
    *(f"STIXGeneral{s}.ttf" for s in ("", "Bol", "Italic", "BolIta")),
)
# Latin capitals and small letters, digits, Greek capitals and small letters, Cyrillic
_RANGES = ((0x41, 0x5B), (0x61, 0x7B), (0x30, 0x3A), (0x391, 0x3AA), (0x3B1, 0x3CA), (0x410, 0x450))
LOOKALIKE = 0.9  # median cosine similarity above which two characters count as one identity
_POINT_SIZE, _BASELINE = 12, 13  # glyph size in pixels (at 72 dpi) and the baseline's row


@dataclass(frozen=True)
class Glyphs:
    """Clean renderings ``images`` ``(identities, typefaces, SIZE, SIZE)`` in ``[0, 1]`` and their characters."""

    images: Tensor
    characters: str


def _render(font, ch: str) -> Tensor:
    from matplotlib.ft2font import LoadFlags

    font.set_text(ch, 0.0, flags=LoadFlags.DEFAULT)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = torch.as_tensor(font.get_image(), dtype=torch.float32).clone() / 255.0
    out = torch.zeros(SIZE, SIZE)
    if img.numel() == 0:
        return out
    h, w = img.shape
    descent = font.get_descent() / 64.0
    top = round(_BASELINE - (h - descent))  # the bitmap's bottom lies `descent` below the baseline
    cols = img.sum(0)
    cx = float((cols * torch.arange(w)).sum() / cols.sum().clamp_min(1e-6))
    left = round(SIZE / 2 - cx)  # centred horizontally on its ink
    big = torch.zeros(SIZE + 2 * h + 2 * w, SIZE + 2 * h + 2 * w)
    o = h + w
    big[o + top : o + top + h, o + left : o + left + w] = img
    return big[o : o + SIZE, o : o + SIZE]


def load_glyphs() -> Glyphs:
    """Render every character of :data:`_RANGES` present in all :data:`TYPEFACES`, look-alikes merged."""
    from pathlib import Path

    import matplotlib
    from matplotlib.ft2font import FT2Font

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [FT2Font(str(folder / name)) for name in TYPEFACES]
    for f in fonts:
        f.set_size(_POINT_SIZE, 72)
    chars = [chr(c) for lo, hi in _RANGES for c in range(lo, hi) if all(f.get_char_index(c) for f in fonts)]
    imgs = torch.stack([torch.stack([_render(f, ch) for f in fonts]) for ch in chars])  # (K, F, S, S)
    flat = F.normalize(imgs.flatten(2), dim=2)
    keep: list[int] = []
    for i in range(len(chars)):
        if keep:
            cos = torch.einsum("fd,kfd->kf", flat[i], flat[keep]).median(1).values
            if float(cos.max()) >= LOOKALIKE:
                continue
        keep.append(i)
    return Glyphs(imgs[keep], "".join(chars[i] for i in keep))


def augment(images: Tensor, copies: int, generator: torch.Generator) -> Tensor:
    """``copies`` random appearances of each image ``(n, S, S)``: ``(n * copies, S * S)``, image-major."""
    x = images.repeat_interleave(copies, 0)[:, None]  # (m, 1, S, S)
    m = len(x)

    def u(scale: float) -> Tensor:
        return (torch.rand(m, generator=generator) * 2 - 1) * scale

    angle, scale, shear = u(math.radians(10)), 1 + u(0.12), u(0.2)
    tx, ty = u(0.15), u(0.15)  # shifts of up to 1.2 pixels
    c, s = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([c, -s + shear, tx], 1), torch.stack([s, c, ty], 1)], 1)
    grid = F.affine_grid(theta, [m, 1, SIZE, SIZE], align_corners=False)
    y = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    thick = (torch.rand(m, generator=generator) < 0.3)[:, None, None, None]
    y = torch.where(thick, 0.7 * F.max_pool2d(y, 3, 1, 1) + 0.3 * y, y)  # heavier strokes
    y = y + 0.08 * torch.randn(y.shape, generator=generator)
    return y.reshape(m, SIZE * SIZE)


__all__ = ["LOOKALIKE", "SIZE", "TYPEFACES", "Glyphs", "augment", "load_glyphs"]
