"""Side-by-side clips of two segments that play in sync and loop.

Both segments are drawn into the *same* frames of one animated GIF, so they can never drift
apart (two separate videos do, see Label Studio #4068). Each half carries a progress bar,
and steps after an episode ended are dimmed and marked, so people see that one side
stopped early. GIF plays in every browser without codecs, loops forever, and is written by
Pillow alone.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Browsers clamp GIF frame delays below 20 ms; 25 fps keeps files small and timing exact.
MAX_CLIP_FPS = 25
#: How long the last frame stays before the loop restarts, so the ending can be seen.
END_HOLD_MS = 700
_GAP = 8  # pixels between the two halves
_BAR = 4  # height of the progress bar


def _fit_height(frames: np.ndarray, height: int) -> np.ndarray:
    if frames.shape[1] == height:
        return frames
    width = round(frames.shape[2] * height / frames.shape[1])
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.NEAREST)) for f in frames])


def _annotate(frames: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Dim padding steps and add a progress bar along the bottom (returns a copy)."""
    out = frames.copy()
    n = len(out)
    width = out.shape[2]
    for i in range(n):
        if not valid[i]:
            out[i] = (out[i].astype(np.uint16) * 2 // 5 + 60).astype(np.uint8)
        filled = round(width * (i + 1) / n)
        out[i, -_BAR:, :filled] = (230, 120, 20)
        out[i, -_BAR:, filled:] = (60, 60, 60)
    return out


@functools.cache
def _ended_label() -> np.ndarray:
    """The "episode over" badge, drawn once (loading the font and drawing the text per frame
    took a tenth of a clip's rendering)."""
    font = ImageFont.load_default(size=14)
    text = "episode over"
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    badge = Image.new("RGB", (box[2] - box[0] + 9, box[3] - box[1] + 9), (20, 20, 20))
    ImageDraw.Draw(badge).text((4, 2), text, fill=(255, 255, 255), font=font)
    return np.asarray(badge)


def _label_ended(canvas: np.ndarray, x0: int, width: int) -> None:
    """Put the badge at the top centre of the half that starts at ``x0`` (in place)."""
    badge = _ended_label()
    h, w = badge.shape[:2]
    w = min(w, width)
    tx = x0 + max(0, (width - w) // 2)
    canvas[6 : 6 + h, tx : tx + w] = badge[: canvas.shape[0] - 6, :w]


def side_by_side_gif(
    left: np.ndarray,
    left_valid: np.ndarray,
    right: np.ndarray,
    right_valid: np.ndarray,
    *,
    fps: float,
) -> bytes:
    """Render two equally long segments side by side as one looping GIF.

    ``left`` and ``right`` are (L, H, W, 3) uint8 frames; ``*_valid`` mark the steps that
    happened before the episode ended. Frames are dropped evenly when ``fps`` exceeds
    :data:`MAX_CLIP_FPS`, so the clip still plays in real time.
    """
    if len(left) != len(right):
        raise ValueError(f"segments differ in length: {len(left)} and {len(right)} steps")
    if len(left) == 0:
        raise ValueError("cannot render an empty segment")
    height = max(left.shape[1], right.shape[1])
    left, right = _annotate(_fit_height(left, height), left_valid), _annotate(_fit_height(right, height), right_valid)
    stride = max(1, int(np.ceil(fps / MAX_CLIP_FPS)))
    keep = np.arange(0, len(left), stride)
    if keep[-1] != len(left) - 1:
        keep = np.append(keep, len(left) - 1)
    duration = round(1000 * stride / fps)
    lw, rw = left.shape[2], right.shape[2]
    images = []
    for i in keep:
        canvas = np.full((height, lw + _GAP + rw, 3), 255, dtype=np.uint8)
        canvas[:, :lw] = left[i]
        canvas[:, lw + _GAP :] = right[i]
        if not left_valid[i]:
            _label_ended(canvas, 0, lw)
        if not right_valid[i]:
            _label_ended(canvas, lw + _GAP, rw)
        img = Image.fromarray(canvas)
        images.append(img.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    durations = [duration] * len(images)
    durations[-1] = duration + END_HOLD_MS
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1)
    return buf.getvalue()
