"""Synthetic face video: a real RAVDESS still (or a drawn face) animated with per-emotion facial
cues and head motion, plus sensor grain, encoded as H.264 like RAVDESS (~10 Mbit/s at 720p).

Frames are built directly as yuv420p: the face region is warped (brows, eyes, mouth corners,
jaw), the mouth cavity is drawn, then the whole frame moves with the head. Positions are given
in units of the face box, the Haar frontal-face box, whose landmarks sit at roughly fixed
fractions (eyes at 0.40 of its height, mouth at 0.78). Fearful and surprised share one cue
distribution; every other pair differs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from emoray.synth.audio import Utterance, exaggeration

REF_BITRATE = 10_000_000
"""RAVDESS video bitrate at 1280x720, 29.97 fps; other sizes and rates scale it. The encoder
targets it (ABR) rather than a CRF: with a CRF the rate jumps from ~2.5 to ~15 Mbit/s between
grain sd 3 and 4, so it would hinge on the face and background."""
GRAIN = 3.0
"""Sensor noise, grey levels (sd) per pixel and frame."""
GOP = 30  # RAVDESS: an I-frame every 30 frames, P-frames between
PRESET = "ultrafast"  # like RAVDESS, no B-frames; decodes at about RAVDESS's speed
HAAR = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"

# Landmarks as fractions of the face box (x, y).
_EYES = ((0.31, 0.40), (0.69, 0.40))
_BROWS = ((0.31, 0.29), (0.69, 0.29))
_INNER_BROWS = ((0.41, 0.30), (0.59, 0.30))
_MOUTH = (0.5, 0.78)
_MOUTH_HALF_WIDTH = 0.14
_ARTICULATION = 0.06  # jaw opening on a fully open vowel, box heights
_CAVITY = 25  # luma of the open mouth


@dataclass(frozen=True)
class FacialCues:
    """One trial's facial expression and head motion, as departures from a neutral face."""

    brow_raise: float  # box heights, + up
    brow_frown: float  # inner brow ends down (+, anger) or up (-, sadness), box heights
    eye_open: float  # eye aperture, fraction
    smile: float  # mouth corners up (+) or down (-), box heights
    mouth_width: float  # fraction
    jaw_drop: float  # static jaw opening, box heights
    articulation: float  # syllable mouth movements, fraction
    nod: float  # box heights
    nod_rate: float  # Hz
    shake: float  # box widths
    shake_rate: float  # Hz
    tilt: float  # head roll, degrees
    lower: float  # head lowered (+), box heights
    recoil: float  # head pulled back (+) or leaning in (-): shrink fraction


FACIAL_PROFILE = {
    1: FacialCues(0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0, 1.0, 0, 0, 0),  # neutral
    2: FacialCues(0, 0, -.3, .018, .04, 0, -.2, .012, 0.4, 0, 1.0, 3, .01, 0),  # calm
    3: FacialCues(.015, 0, -.25, .05, .16, 0, .2, .025, 1.8, 0, 1.0, 0, 0, 0),  # happy
    4: FacialCues(0, -.035, -.3, -.035, -.04, 0, -.4, .008, 0.5, 0, 1.0, -2, .05, 0),  # sad
    5: FacialCues(-.03, .045, .08, -.015, -.08, 0, .4, 0, 1.0, .02, 3.0, 0, 0, -.04),  # angry
    6: FacialCues(.06, -.015, .35, 0, -.1, .035, .1, 0, 1.0, .006, 5.0, 0, -.01, .05),  # fearful
    7: FacialCues(-.02, .015, -.35, -.03, .05, 0, -.2, 0, 1.0, .015, 1.0, -5, 0, .02),  # disgust
    8: FacialCues(.06, -.015, .35, 0, -.1, .035, .1, 0, 1.0, .006, 5.0, 0, -.01, .05),  # surprised
}
"""Fearful (6) and surprised (8) are identical by design."""
_CUE_JITTER = np.array([.008, .008, .08, .008, .03, .006, .1, .004, .1, .003, .1, 1.5, .01, .01])
_RATES = np.array([f.name.endswith("_rate") for f in fields(FacialCues)])


@dataclass(frozen=True)
class FaceStyle:
    """An actor's facial acting."""

    expressivity: float  # scales every facial cue
    lead: float  # s, the expression starts this long before speech
    ramp: float  # s, time to reach the full expression


def actor_face_style(rng: np.random.Generator) -> FaceStyle:
    return FaceStyle(rng.uniform(0.7, 1.3), rng.uniform(0.1, 0.6), rng.uniform(0.25, 0.6))


def facial_cues(emotion: int, intensity: int, style: FaceStyle,
                rng: np.random.Generator) -> FacialCues:
    """One trial's cues: the emotion's profile, exaggerated, plus per-trial jitter (rates jitter
    proportionally, amplitudes additively)."""
    v = np.array(astuple(FACIAL_PROFILE[emotion]), dtype=float)
    jitter = rng.normal(0, 1, len(v)) * _CUE_JITTER
    v = np.where(_RATES, v * (1 + jitter), v * exaggeration(intensity, style.expressivity) + jitter)
    c = FacialCues(*(float(x) for x in v))
    return replace(c, nod=abs(c.nod), shake=abs(c.shake), jaw_drop=max(c.jaw_drop, 0.0))


@dataclass(frozen=True, eq=False)
class Canvas:
    """A still frame of the actor as yuv420p (``H*3/2`` rows of ``W``) and where the face is,
    with the face-region warp fields precomputed."""

    yuv: np.ndarray
    box: tuple[float, float, float, float]  # x, y, w, h (pixels)
    roi: tuple[int, int, int, int]  # y0, y1, x0, x1, even
    grid: np.ndarray  # (2, roi h, roi w) pixel coordinates x, y
    dy: np.ndarray  # (5, roi h, roi w) vertical displacement per unit of brow_raise,
    # brow_frown, eye_open, smile, jaw
    dx: np.ndarray  # (roi h, roi w) horizontal displacement per unit of mouth_width

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.yuv.shape[1], self.yuv.shape[0] * 2 // 3

    def point(self, fx: float, fy: float) -> tuple[float, float]:
        """Pixel position of a fraction of the face box."""
        x, y, w, h = self.box
        return x + fx * w, y + fy * h


def still_path(stills_dir: str | Path, actor: int) -> Path:
    """Actor n's still, ``Actor_NN.png``; wraps around after 24."""
    return Path(stills_dir) / f"Actor_{(actor - 1) % 24 + 1:02d}.png"


@functools.lru_cache(maxsize=32)
def detect_face(still: Path) -> tuple[int, int, int, int]:
    """The largest Haar frontal face in an image file, (x, y, w, h) in its pixels."""
    img = cv2.imread(str(still), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(f"cannot read face still {still}")
    faces = cv2.CascadeClassifier(HAAR).detectMultiScale(img, 1.1, 5,
                                                         minSize=(img.shape[0] // 6,) * 2)
    if len(faces) == 0:
        raise ValueError(f"no frontal face found in {still}")
    return tuple(int(v) for v in max(faces, key=lambda f: f[2] * f[3]))


@functools.lru_cache(maxsize=8)
def face_canvas(width: int, height: int, still: Path | None = None, look: int = 0) -> Canvas:
    """The actor's face at ``width`` x ``height``: the still scaled to the frame, or (no still)
    a face drawn from the seed ``look``."""
    if still is None:
        bgr, box = draw_face(width, height, np.random.default_rng(look))
    else:
        img = cv2.imread(str(still))
        x, y, w, h = detect_face(still)
        sx, sy = width / img.shape[1], height / img.shape[0]
        bgr = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
        box = (x * sx, y * sy, w * sx, h * sy)
    return _rig(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), box)


def draw_face(width: int, height: int,
              rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A plain-background portrait with varied proportions and colours that the Haar frontal
    cascade finds; returns the BGR image and the face box (x, y, w, h)."""
    s = 0.5 * height * rng.uniform(0.92, 1.08)
    bx, by = width / 2 + rng.uniform(-0.05, 0.05) * width - s / 2, 0.45 * height - s / 2
    skin = np.array([[150, 180, 225], [120, 160, 210], [90, 125, 170], [70, 95, 135]][
        rng.integers(4)]) * rng.uniform(0.9, 1.05)
    hair, shirt = np.array([30, 35, 45]) * rng.uniform(0.5, 1.5), rng.uniform(20, 90, 3)
    wide, eye_x = rng.uniform(0.9, 1.08), 0.19 * rng.uniform(0.92, 1.08)
    img = np.empty((height, width, 3), np.float32)
    img[:] = rng.uniform(150, 225, 3)

    def p(fx, fy):
        return int(round(bx + fx * s)), int(round(by + fy * s))

    def n(f):
        return max(1, int(round(f * s)))

    def ellipse(fx, fy, ax, ay, colour, start=0, end=360, thick=-1):
        cv2.ellipse(img, p(fx, fy), (n(ax), n(ay)), 0, start, end, np.asarray(colour).tolist(),
                    thick, cv2.LINE_AA)

    ellipse(0.5, 1.55, 0.9, 0.55, shirt)
    cv2.rectangle(img, p(0.36, 0.9), p(0.64, 1.2), (skin * 0.85).tolist(), -1)
    ellipse(0.5, 0.42, 0.47 * wide, 0.58, hair)
    for side in (-1, 1):
        ellipse(0.5 + side * 0.42 * wide, 0.5, 0.06, 0.1, skin * 0.9)
    ellipse(0.5, 0.55, 0.41 * wide, 0.55, skin)
    ellipse(0.5, 0.12, 0.43 * wide, 0.2, hair, 180, 360)
    for side in (-1, 1):
        ex = 0.5 + side * eye_x
        ellipse(ex, 0.39, 0.11, 0.07, skin * 0.6)  # eye socket shadow
        ellipse(ex, 0.40, 0.075, 0.032, np.minimum(skin * 1.25, 200))  # sclera
        cv2.circle(img, p(ex, 0.40), n(0.034), (50, 60, 70), -1, cv2.LINE_AA)
        cv2.circle(img, p(ex, 0.40), n(0.012), (10, 10, 10), -1, cv2.LINE_AA)
        ellipse(ex, 0.40, 0.078, 0.036, (40, 40, 50), 180, 360, n(0.01))
        ellipse(ex, 0.31, 0.09, 0.03, hair, 190, 350, n(0.022))  # brow
    cv2.line(img, p(0.5, 0.42), p(0.5, 0.6), (skin * 1.08).tolist(), n(0.03), cv2.LINE_AA)
    ellipse(0.5, 0.62, 0.07, 0.03, skin * 0.7, 0, 180, n(0.012))  # nostrils
    ellipse(0.5, 0.775, 0.15, 0.035, skin * np.array([0.75, 0.7, 0.95]))  # lips
    cv2.line(img, p(0.36, 0.775), p(0.64, 0.775), (skin * 0.45).tolist(), n(0.01), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 0.012 * s)
    return np.clip(img, 0, 255).astype(np.uint8), (bx, by, s, s)


def _rig(yuv: np.ndarray, box: tuple[float, float, float, float]) -> Canvas:
    """Canvas with the face-region warp fields: Gaussian bumps at the landmarks."""
    width, height = yuv.shape[1], yuv.shape[0] * 2 // 3
    x, y, w, h = box
    x0, x1 = (max(0, int(x - 0.05 * w)) // 2 * 2, min(width, int(x + 1.05 * w)) // 2 * 2)
    y0, y1 = (max(0, int(y + 0.1 * h)) // 2 * 2, min(height, int(y + 1.15 * h)) // 2 * 2)
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    u, v = (gx - x) / w, (gy - y) / h

    def bumps(points, su, sv):
        return sum(np.exp(-0.5 * (((u - pu) / su) ** 2 + ((v - pv) / sv) ** 2))
                   for pu, pv in points)

    def step(z):
        z = np.clip(z, 0, 1)
        return z * z * (3 - 2 * z)

    corners = [(_MOUTH[0] + side * _MOUTH_HALF_WIDTH, _MOUTH[1]) for side in (-1, 1)]
    jaw = (np.exp(-0.5 * ((u - 0.5) / 0.2) ** 2) * step((v - 0.76) / 0.04)
           * (1 - step((v - 0.9) / 0.2)))
    dy = np.stack([-h * bumps(_BROWS, 0.1, 0.06), h * bumps(_INNER_BROWS, 0.05, 0.05),
                   (gy - y - _EYES[0][1] * h) * bumps(_EYES, 0.09, 0.05),
                   -h * bumps(corners, 0.05, 0.04), h * jaw]).astype(np.float32)
    dx = ((gx - x - _MOUTH[0] * w) * bumps([_MOUTH], 0.14, 0.05)).astype(np.float32)
    grid = np.stack([gx, gy])
    for a in (yuv, grid, dy, dx):
        a.setflags(write=False)  # canvases are cached and shared
    return Canvas(yuv, box, (y0, y1, x0, x1), grid, dy, dx)


def render_video(canvas: Canvas, cues: FacialCues, style: FaceStyle, utt: Utterance, fps: float,
                 rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The trial's frames, yuv420p arrays, as long as ``utt`` at ``fps``."""
    width, height = canvas.size
    t = np.arange(max(1, round(utt.duration * fps))) / fps
    tracks = _tracks(cues, style, utt, t, rng)
    grain = _grain_bank(height, width)
    work = canvas.yuv.copy()
    for row in tracks:
        _pose_face(canvas, work, row)
        frame = np.empty_like(work)
        _move_head(canvas, work, frame, row)
        _add_grain(frame, grain, rng)
        yield frame


def _tracks(c: FacialCues, style: FaceStyle, utt: Utterance, t: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """Per-frame (brow_raise, brow_frown, eye_open, smile, mouth_width, jaw, dx, dy, roll, scale):
    the expression ramps in before speech, the jaw follows the syllables, the head moves."""
    onset = utt.start - style.lead * rng.uniform(0.7, 1.3)
    a = np.clip((t - onset) / (style.ramp * rng.uniform(0.8, 1.2)), 0, 1)
    a = a * a * (3 - 2 * a)
    jaw = a * c.jaw_drop + _ARTICULATION * max(1 + c.articulation, 0.2) * utt.jaw(t)
    knots = np.arange(0, t[-1] + 1.0, 0.5)
    idle = [np.interp(t, knots, rng.normal(0, sd, len(knots))) for sd in (0.006, 0.006, 0.8)]
    phase = rng.uniform(0, 2 * np.pi, 2)
    nod = c.nod * np.sin(2 * np.pi * c.nod_rate * t + phase[0])
    shake = c.shake * np.sin(2 * np.pi * c.shake_rate * t + phase[1])
    return np.stack([a * c.brow_raise, a * c.brow_frown, a * c.eye_open, a * c.smile,
                     a * c.mouth_width, jaw, a * shake + idle[0],
                     a * (c.lower + nod - 0.5 * c.recoil) + idle[1], a * c.tilt + idle[2],
                     1 - a * c.recoil], axis=1)


def _planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V views of a yuv420p array."""
    height, width = yuv.shape[0] * 2 // 3, yuv.shape[1]
    chroma = yuv[height:].reshape(-1)
    q = height * width // 4
    return (yuv[:height], chroma[:q].reshape(height // 2, width // 2),
            chroma[q:].reshape(height // 2, width // 2))


def _pose_face(canvas: Canvas, work: np.ndarray, row: np.ndarray) -> None:
    """Warp the face region of ``canvas`` into ``work`` and draw the open mouth."""
    y0, y1, x0, x1 = canvas.roi
    dy = np.einsum("k,kij->ij", row[[0, 1, 2, 3, 5]].astype(np.float32), canvas.dy)
    mx = canvas.grid[0] - np.float32(row[4]) * canvas.dx
    my = canvas.grid[1] - dy
    for i, (src, dst) in enumerate(zip(_planes(canvas.yuv), _planes(work))):
        if i == 0:
            cv2.remap(src, mx, my, cv2.INTER_LINEAR, dst=dst[y0:y1, x0:x1])
        else:
            cv2.remap(src, mx[::2, ::2] * 0.5, my[::2, ::2] * 0.5, cv2.INTER_LINEAR,
                      dst=dst[y0 // 2:y1 // 2, x0 // 2:x1 // 2])
    _draw_mouth(canvas, _planes(work)[0], smile=row[3], width=row[4], jaw=row[5])


def _draw_mouth(canvas: Canvas, luma: np.ndarray, smile: float, width: float, jaw: float) -> None:
    """The lip line, curved by ``smile``, and the dark cavity when the jaw is open."""
    _, _, w, h = canvas.box
    cx, cy = canvas.point(*_MOUTH)
    s = np.linspace(-1, 1, 11)
    xs = cx + s * _MOUTH_HALF_WIDTH * w * (1 + width)
    line = cy - smile * h * s * s
    open_px = jaw * h * (1 - s * s)
    thick = max(1, round(0.01 * h))
    if jaw * h >= 0.5:
        outline = np.concatenate([np.stack([xs, line - 0.15 * open_px], 1),
                                  np.stack([xs, line + 0.85 * open_px], 1)[::-1]])
        cv2.fillPoly(luma, [np.round(outline * 16).astype(np.int32)], _CAVITY, cv2.LINE_AA, 4)
    cv2.polylines(luma, [np.round(np.stack([xs, line], 1) * 16).astype(np.int32)], False,
                  2 * _CAVITY, thick, cv2.LINE_AA, 4)


def _move_head(canvas: Canvas, src: np.ndarray, dst: np.ndarray, row: np.ndarray) -> None:
    """Move the whole frame with the head: shift, roll about the face centre, scale."""
    x, y, w, h = canvas.box
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), float(row[8]), float(row[9]))
    m[:, 2] += (row[6] * w, row[7] * h)
    half = m.copy()
    half[:, 2] /= 2
    for i, (s, d) in enumerate(zip(_planes(src), _planes(dst))):
        cv2.warpAffine(s, m if i == 0 else half, (d.shape[1], d.shape[0]), dst=d,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


_GRAIN_PAD = 64


@functools.lru_cache(maxsize=2)
def _grain_bank(height: int, width: int, n: int = 8) -> np.ndarray:
    """Fixed Gaussian noise planes, a little larger than the frame; frames take random windows."""
    rng = np.random.default_rng(0x5EED)
    noise = rng.standard_normal((n, height + _GRAIN_PAD, width + _GRAIN_PAD), dtype=np.float32)
    return np.round(noise * GRAIN).astype(np.int16)


def _add_grain(frame: np.ndarray, bank: np.ndarray, rng: np.random.Generator) -> None:
    for plane in _planes(frame):
        k = rng.integers(len(bank))
        oy, ox = rng.integers(0, _GRAIN_PAD + 1, 2)
        window = bank[k, oy:oy + plane.shape[0], ox:ox + plane.shape[1]]
        cv2.add(plane, window, dst=plane, dtype=cv2.CV_8U)


def frame_rate(fps: float) -> Fraction:
    """NTSC-style rates exactly (29.97 -> 30000/1001), others as a simple fraction."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    return ntsc if abs(float(ntsc) - fps) < 5e-3 else Fraction(fps).limit_denominator(1000)


def bitrate(width: int, height: int, fps: float) -> int:
    """RAVDESS's bitrate scaled to this frame size and rate."""
    return int(REF_BITRATE * width * height / (1280 * 720) * fps / 29.97)


def encode_h264(path: str | Path, frames: Iterator[np.ndarray], width: int, height: int,
                fps: float) -> None:
    """Write yuv420p frames as an H.264 MP4 without audio. One encoder thread: the output is
    byte-identical from run to run."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=frame_rate(fps), options={"preset": PRESET})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate(width, height, fps)
        stream.codec_context.gop_size = GOP
        stream.codec_context.thread_count = 1
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
