"""Images the Dagster UI shows inline: a PNG or JPEG downscaled and embedded as a base64 data URI in Markdown
metadata, because a path metadata value is only text and the UI cannot open files from the data root."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import dagster as dg

MAX_WIDTH = 480  # px: wide enough to read a curve, small enough for the event log
MAX_BYTES = 150_000  # per image, encoded; the event log stores every materialization's metadata


def image_data_uri(path: str | Path, max_width: int = MAX_WIDTH, max_bytes: int = MAX_BYTES) -> str:
    """A data URI of the image at ``path``: no wider than ``max_width``, PNG if that fits ``max_bytes``, else JPEG
    at falling quality, else halved until it fits."""
    from PIL import Image

    with Image.open(path) as src:
        image = src.convert("RGB")
    width = max_width
    while True:
        if image.width > width:
            image = image.resize((width, max(1, round(image.height * width / image.width))), Image.LANCZOS)
        for fmt, options in (("PNG", {"optimize": True}), ("JPEG", {"quality": 85}), ("JPEG", {"quality": 60})):
            buf = io.BytesIO()
            image.save(buf, fmt, **options)
            encoded = base64.b64encode(buf.getvalue()).decode()
            if len(encoded) <= max_bytes:
                return f"data:image/{fmt.lower()};base64,{encoded}"
        width = max(1, image.width // 2)


def image_markdown(path: str | Path, caption: str, max_width: int = MAX_WIDTH, max_bytes: int = MAX_BYTES) -> str:
    """Markdown showing the image itself, its caption and where the full-size file is. Markdown's image syntax,
    not an HTML <img>: the UI's Markdown renders no raw HTML but lets data: URIs through as image sources."""
    alt = caption.replace("]", "").replace("[", "")
    return f"**{caption}**\n\n![{alt}]({image_data_uri(path, max_width, max_bytes)})\n\n`{path}`\n"


def inline_image(path: str | Path, caption: str, max_width: int = MAX_WIDTH) -> dg.MetadataValue:
    return dg.MetadataValue.md(image_markdown(path, caption, max_width))


def inline_images(images: list[tuple[str | Path, str]], max_width: int = MAX_WIDTH,
                  max_bytes: int = MAX_BYTES) -> dg.MetadataValue:
    """Several images in one Markdown entry, sharing one byte budget."""
    share = max_bytes // max(1, len(images))
    return dg.MetadataValue.md("\n".join(image_markdown(p, c, max_width, share) for p, c in images))
