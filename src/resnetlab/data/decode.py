"""Decoding an encoded image no larger than a transform needs: a JPEG can be decoded at 1/2, 1/4 or 1/8 of its
size directly (libjpeg's DCT scaling), which costs a fraction of a full decode. Two decoders do it: Pillow
(``Image.draft``) and simplejpeg (libjpeg-turbo, bundled in its wheel; the optional extra ``fast-jpeg``). The
transforms of ``transforms.py`` ask a ``Source`` for the smallest size that still covers their output, and
compute every coordinate on the file's own size, so the crop is the same whichever decoder or scale serves it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

try:  # optional: pip install 'resnetlab[fast-jpeg]'
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the environment
    simplejpeg = None

DECODERS = ("pillow", "simplejpeg")


def default_decoder() -> str:
    """``RESNETLAB_DECODER`` if set, else simplejpeg where installed (the faster here: docs/performance.md), else
    Pillow."""
    chosen = os.environ.get("RESNETLAB_DECODER") or ("simplejpeg" if simplejpeg is not None else "pillow")
    return chosen if chosen in DECODERS and (chosen != "simplejpeg" or simplejpeg is not None) else "pillow"


class Source:
    """An image file (a path or its bytes) or a PIL image; ``size`` is (width, height) before decoding and
    ``decode(w, h)`` the RGB image, at least w×h when it is larger (JPEGs only: other formats decode whole)."""

    def __init__(self, image: str | Path | bytes | Image.Image, decoder: str | None = None):
        self.decoder = decoder or default_decoder()
        self.image: Image.Image | None = image if isinstance(image, Image.Image) else None
        self.data = image if isinstance(image, bytes) else None
        self.path = None if isinstance(image, (bytes, Image.Image)) else image
        self._header: tuple[int, int] | None = None
        if self.image is None and self.decoder == "simplejpeg" and self._bytes()[:2] == b"\xff\xd8":
            try:
                h, w, _, _ = simplejpeg.decode_jpeg_header(self._bytes())
                self._header = (w, h)
            except ValueError:  # not a JPEG it reads: Pillow decides
                self._header = None
        if self._header is None and self.image is None:
            opened = Image.open(self.path if self.path is not None else io.BytesIO(self._bytes()))
            self.image = opened

    def _bytes(self) -> bytes:
        if self.data is None:
            self.data = Path(self.path).read_bytes()  # type: ignore[arg-type]
        return self.data

    @property
    def size(self) -> tuple[int, int]:
        if self._header is not None:
            return self._header
        assert self.image is not None
        return self.image.size

    def decode(self, width: int = 0, height: int = 0) -> Image.Image:
        if self._header is not None:
            pixels = simplejpeg.decode_jpeg(self._bytes(), colorspace="RGB", min_width=width, min_height=height)
            return Image.fromarray(np.ascontiguousarray(pixels))
        image = self.image
        assert image is not None
        if width and image.format == "JPEG" and image.mode in ("RGB", "L", "YCbCr"):
            image.draft("RGB", (width, height))
        return image.convert("RGB")

    def close(self) -> None:
        if self.image is not None and self.path is not None:
            self.image.close()
