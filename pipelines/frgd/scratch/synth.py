"""Synthetic damage: the training and test data of the damage detector (:mod:`frgd.scratch.detect`).

Real old photos come without masks, so the detector learns from clean photos damaged here, where the mask is known
exactly. What is drawn follows what scanned prints show (``../shared/real/old_photos``, looked at, never trained on):

* **cracks**: the emulsion broken along a jagged, branching path, 0.6-3 px wide, showing the paper (cream or white);
* **scratches**: long smooth curves, thinner and often fainter, bright or dark;
* **spots**: dust and emulsion flecks, 1-8 px across;
* **tears**: a paper-coloured piece missing at the photo's edge;
* **creases**: a fold across the print, long and nearly straight, seen as a bright line (the broken emulsion) often
  with a dark shadow line beside it (the fold's relief), often broken into pieces (:data:`DamageConfig.crease_prob`);
* **flaking**: a crack whose emulsion has chipped off along stretches, wider there (``flake_prob``).

Faces may also wear **glasses** (:func:`draw_glasses`): a *decoy*, part of the photo before it ages and never
marked. A glasses frame is a thin dark or metallic line around the eyes, just what a dark scratch looks like to a
network that has never seen one, and a restorer that fills it in takes the glasses off the person.

Before the damage the clean photo is *aged* (grey or sepia toning, faded contrast: most old prints are monochrome);
after it the whole print is *scanned* (a slight blur, film grain, JPEG), so the damage's edges are as soft and noisy as
a real scan's. The mask marks the pixels the damage visibly changed (by at least :data:`VISIBLE` in some channel,
before the scan): a bright scratch over a white collar changes nothing and is not marked.

Everything is ``float32`` ``(H, W, 3)`` in ``[0, 1]`` and ``(H, W)`` ``{0, 1}`` masks, reproducible from a
``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SUPERSAMPLE = 4
"""Damage is drawn at this multiple of the image's resolution and area-averaged down, so widths below a pixel give
partial coverage instead of jagged one-pixel lines."""
VISIBLE = 12.0 / 255.0
"""A pixel is damaged when the damage changed it by at least this much in some channel (before the scan)."""


@dataclass(frozen=True)
class DamageConfig:
    """What :func:`damage_photo` draws. Counts are per ``128 x 128`` px of image (scaled with its area)."""

    clean_prob: float = 0.15
    """Share of examples with no damage at all (the detector must mark nothing there)."""
    cracks: tuple[float, float] = (0.0, 3.0)
    crack_width: tuple[float, float] = (0.6, 3.0)
    crack_length: tuple[float, float] = (15.0, 220.0)
    branch_prob: float = 0.45
    scratches: tuple[float, float] = (0.0, 1.5)
    scratch_width: tuple[float, float] = (0.5, 2.0)
    spots_prob: float = 0.4
    spots: tuple[float, float] = (1.0, 12.0)
    spot_radius: tuple[float, float] = (0.6, 4.0)
    tear_prob: float = 0.08
    dark_prob: float = 0.1
    """Share of marks darker than the photo (dirt, ink, a scratch in a negative) instead of paper-bright. Kept low:
    at 0.25 the detector also marked glasses frames and dark hair strands (thin dark lines are everywhere in photos,
    where the paper-white of a crack is not)."""
    alpha: tuple[float, float] = (0.45, 1.0)
    grey_prob: float = 0.55
    sepia_prob: float = 0.6
    """Of the grey photos, the share toned sepia."""
    fade: tuple[float, float] = (0.55, 1.0)
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    grain: tuple[float, float] = (0.0, 0.035)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)
    crease_prob: float = 0.3
    """Share of damaged examples with creases (1 + Poisson(0.5) of them, across the image)."""
    crease_width: tuple[float, float] = (0.6, 2.5)
    crease_shadow_prob: float = 0.6
    """Share of creases with a dark shadow line beside the bright one."""
    crease_broken_prob: float = 0.5
    """Share of creases drawn as pieces with gaps (the emulsion broke in places along the fold)."""
    flake_prob: float = 0.35
    """Share of cracks with flakes: stretches of 1-8 steps along them 1.6-3 times as wide (at least 1.5 px). At 0
    (and ``crease_prob`` 0) no numbers are drawn for creases and flakes: the examples are those of the detector
    trained before them (the evaluation's synthetic part keeps them so)."""
    glasses_prob: float = 0.3
    """Share of face examples wearing glasses (:func:`draw_glasses`; drawn by :func:`frgd.scratch.data.make_example`,
    which knows where the eyes are). At 0 no numbers are drawn for them: the examples are those of the detector
    trained before the glasses (the evaluation's synthetic part keeps them so)."""


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _log_u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def _count(rng: np.random.Generator, lo_hi: tuple[float, float], area_units: float) -> int:
    return int(rng.poisson(_u(rng, lo_hi) * area_units))


def age(image: np.ndarray, rng: np.random.Generator, cfg: DamageConfig) -> np.ndarray:
    """``image`` ``(H, W, 3)`` as an old print: grey (sometimes sepia) and faded towards a paper tone."""
    out = image.astype(np.float32)
    if rng.random() < cfg.grey_prob:
        y = out @ np.array([0.299, 0.587, 0.114], np.float32)
        tint = np.ones(3, np.float32)
        if rng.random() < cfg.sepia_prob:
            s = _u(rng, (0.05, 0.3))
            tint = np.array([1.0, 1.0 - 0.45 * s, 1.0 - s], np.float32)
        out = y[..., None] * tint
    f = _u(rng, cfg.fade)
    base = _u(rng, (0.0, 1.0 - f)) if f < 1.0 else 0.0
    return np.clip(base + f * out, 0.0, 1.0).astype(np.float32)


def _paper(rng: np.random.Generator, dark: bool) -> np.ndarray:
    """A damage colour: the bare paper (cream to white) or a dark mark."""
    if dark:
        return np.full(3, _u(rng, (0.0, 0.3)), np.float32) * np.array([1.0, 0.95, 0.9], np.float32)
    v = _u(rng, (0.72, 1.0))
    return np.array([v, v * _u(rng, (0.92, 1.0)), v * _u(rng, (0.78, 1.0))], np.float32)


def _crack_path(rng: np.random.Generator, start: np.ndarray, angle: float, length: float, jag: float) -> np.ndarray:
    """A jagged path ``(N, 2)`` (x, y) of about ``length`` px from ``start``: short segments whose direction drifts
    by ``jag`` radians per step, now and then turning sharply."""
    pts = [start.astype(np.float64)]
    walked = 0.0
    while walked < length:
        step = _u(rng, (1.0, 4.5))
        angle += rng.normal(0.0, jag) + (rng.normal(0.0, 0.9) if rng.random() < 0.06 else 0.0)
        pts.append(pts[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
        walked += step
    return np.stack(pts)


def _bezier(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth curve ``(N, 2)`` across (or into) the image: a quadratic Bezier through three random points."""
    p = rng.uniform(-0.2, 1.2, size=(3, 2)) * np.array([w, h])
    n = max(8, int(np.linalg.norm(p[2] - p[0]) / 2))
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t**2 * p[2]


def _crease(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A fold ``(N, 2)`` (x, y): a nearly straight line (a slight bend) through a random point, 0.4-1.5 times the
    image's larger side long, so most run off its edges."""
    length = _u(rng, (0.4, 1.5)) * max(w, h)
    c = rng.uniform(0, 1, 2) * np.array([w, h])
    angle = rng.uniform(0, math.pi)
    along = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-along[1], along[0]])
    bend = _u(rng, (-0.06, 0.06)) * length
    n = max(8, int(length / 2))
    t = np.linspace(-0.5, 0.5, n)[:, None]
    return c + t * length * along + (1 - 4 * t**2) * bend * normal


def _pieces(rng: np.random.Generator, path: np.ndarray) -> list[np.ndarray]:
    """``path`` (points about 2 px apart) cut into pieces 10-60 px long with gaps of 3-20 px between them."""
    out, i = [], 0
    while i < len(path) - 1:
        j = i + max(2, int(_u(rng, (10.0, 60.0)) / 2))
        out.append(path[i:j])
        i = j + max(1, int(_u(rng, (3.0, 20.0)) / 2))
    return [p for p in out if len(p) > 1]


def _normal_offset(path: np.ndarray, d: float) -> np.ndarray:
    """``path`` moved ``d`` px along its normal (from its overall direction)."""
    v = path[-1] - path[0]
    v = v / max(float(np.linalg.norm(v)), 1e-9)
    return path + d * np.array([-v[1], v[0]])


def _draw_path(canvas: np.ndarray, path: np.ndarray, width: float) -> None:
    """Draw ``path`` (image px) ``width`` px wide into the supersampled coverage ``canvas`` (max-combined)."""
    k = SUPERSAMPLE
    pts = np.round(path * k + (k - 1) / 2.0).astype(np.int32).reshape(-1, 1, 2)
    thick = max(1, int(round(width * k)))
    cv2.polylines(canvas, [pts], False, 1.0, thickness=thick, lineType=cv2.LINE_AA)


def damage_layers(
    h: int, w: int, rng: np.random.Generator, cfg: DamageConfig
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The marks of one example as ``(coverage (h, w) in [0, 1], colour (3,), alpha)`` layers, in drawing order."""
    if rng.random() < cfg.clean_prob:
        return []
    k = SUPERSAMPLE
    units = h * w / (128.0 * 128.0)
    layers: list[tuple[np.ndarray, np.ndarray, float]] = []

    def finish(canvas: np.ndarray) -> np.ndarray:
        return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)

    for _ in range(_count(rng, cfg.cracks, units)):
        canvas = np.zeros((h * k, w * k), np.float32)
        start = rng.uniform(0, 1, 2) * np.array([w, h])
        angle = rng.uniform(0, 2 * math.pi)
        width = _log_u(rng, cfg.crack_width)
        path = _crack_path(rng, start, angle, _log_u(rng, cfg.crack_length), _u(rng, (0.15, 0.7)))
        _draw_path(canvas, path, width)
        while rng.random() < cfg.branch_prob and len(path) > 2:
            at = path[rng.integers(1, len(path))]
            turn = rng.choice([-1.0, 1.0]) * _u(rng, (0.5, 1.6))
            sub = _crack_path(rng, at, angle + turn, _log_u(rng, (8.0, 80.0)), _u(rng, (0.1, 0.5)))
            _draw_path(canvas, sub, max(0.5, width * _u(rng, (0.5, 1.0))))
        if cfg.flake_prob > 0 and rng.random() < cfg.flake_prob:  # the emulsion chipped off along stretches
            for _ in range(1 + int(rng.poisson(len(path) / 20.0))):
                i = int(rng.integers(len(path) - 1))
                stretch = path[i : i + int(rng.integers(2, 9))]
                _draw_path(canvas, stretch, max(1.5, width * _u(rng, (1.6, 3.0))))
        layers.append((finish(canvas), _paper(rng, rng.random() < cfg.dark_prob), _u(rng, cfg.alpha)))
    if cfg.crease_prob > 0 and rng.random() < cfg.crease_prob:
        for _ in range(1 + int(rng.poisson(0.5))):
            fold = _crease(rng, w, h)
            parts = _pieces(rng, fold) if rng.random() < cfg.crease_broken_prob else [fold]
            width = _log_u(rng, cfg.crease_width)
            canvas = np.zeros((h * k, w * k), np.float32)
            for part in parts:
                _draw_path(canvas, part, width)
            layers.append((finish(canvas), _paper(rng, False), _u(rng, (0.3, 0.9))))
            if rng.random() < cfg.crease_shadow_prob:  # the fold's relief: a dark line beside the bright one
                side = rng.choice([-1.0, 1.0]) * width * _u(rng, (0.8, 1.6))
                canvas = np.zeros((h * k, w * k), np.float32)
                for part in parts:
                    _draw_path(canvas, _normal_offset(part, side), width * _u(rng, (0.6, 1.2)))
                layers.append((finish(canvas), _paper(rng, True), _u(rng, (0.2, 0.6))))
    for _ in range(_count(rng, cfg.scratches, units)):
        canvas = np.zeros((h * k, w * k), np.float32)
        _draw_path(canvas, _bezier(rng, w, h), _log_u(rng, cfg.scratch_width))
        layers.append((finish(canvas), _paper(rng, rng.random() < cfg.dark_prob), _u(rng, cfg.alpha)))
    if rng.random() < cfg.spots_prob:
        canvas = np.zeros((h * k, w * k), np.float32)
        for _ in range(_count(rng, cfg.spots, units)):
            c = (int(rng.uniform(0, w * k)), int(rng.uniform(0, h * k)))
            r = _log_u(rng, cfg.spot_radius) * k
            axes = (max(1, int(r)), max(1, int(r * _u(rng, (0.4, 1.0)))))
            cv2.ellipse(canvas, c, axes, rng.uniform(0, 180), 0, 360, 1.0, -1, cv2.LINE_AA)
        layers.append((finish(canvas), _paper(rng, rng.random() < cfg.dark_prob), _u(rng, cfg.alpha)))
    if rng.random() < cfg.tear_prob:
        canvas = np.zeros((h * k, w * k), np.float32)
        side = rng.integers(4)
        depth = _u(rng, (0.04, 0.25)) * (w if side % 2 else h) * k
        n = 12
        along = np.linspace(0, (h if side % 2 else w) * k, n)
        inward = depth * rng.uniform(0.2, 1.0, n)
        edge = {0: np.stack([along, inward], 1), 1: np.stack([w * k - inward, along], 1),
                2: np.stack([along, h * k - inward], 1), 3: np.stack([inward, along], 1)}[int(side)]  # fmt: skip
        corners = {0: [[w * k, 0], [0, 0]], 1: [[w * k, h * k], [w * k, 0]],
                   2: [[w * k, h * k], [0, h * k]], 3: [[0, h * k], [0, 0]]}[int(side)]  # fmt: skip
        poly = np.concatenate([edge, np.array(corners, np.float64)]).astype(np.int32)
        cv2.fillPoly(canvas, [poly], 1.0, cv2.LINE_AA)
        layers.append((finish(canvas), _paper(rng, False), 1.0))
    return layers


@dataclass(frozen=True)
class GlassesConfig:
    """The glasses :func:`draw_glasses` draws; lengths are in eye distances (the distance between the eye centres)."""

    lens_width: tuple[float, float] = (0.72, 1.0)
    lens_aspect: tuple[float, float] = (0.5, 0.85)
    """Lens height over width."""
    roundness: tuple[float, float] = (2.0, 7.0)
    """Superellipse exponent of the lens: 2 an ellipse, larger a rounded rectangle."""
    thickness: tuple[float, float] = (0.012, 0.09)
    """Frame width (log-uniform): thin metal wire to thick plastic."""
    drop: tuple[float, float] = (-0.04, 0.1)
    """Lens centres below the eyes."""
    temple_length: tuple[float, float] = (0.2, 0.6)
    tilt_deg: float = 4.0
    dark_prob: float = 0.6
    """Frame colours: dark (black, brown, tortoiseshell), else metal or light plastic."""
    highlight_prob: float = 0.35
    tint_prob: float = 0.2
    """Share of lenses tinted (a faint colour over the eyes)."""


def _superellipse(centre: np.ndarray, a: float, b: float, n: float, angle: float, count: int = 96) -> np.ndarray:
    """Closed outline ``(count + 1, 2)`` (x, y) of ``|x/a|^n + |y/b|^n = 1`` turned by ``angle`` about ``centre``."""
    t = np.linspace(0.0, 2 * math.pi, count + 1)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2.0 / n)
    y = b * np.sign(s) * np.abs(s) ** (2.0 / n)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], 1)


def _glasses_colour(rng: np.random.Generator, cfg: GlassesConfig) -> np.ndarray:
    if rng.random() < cfg.dark_prob:
        v = _u(rng, (0.02, 0.22))
        return np.array([v * _u(rng, (1.0, 1.6)), v * _u(rng, (0.85, 1.2)), v], np.float32).clip(0, 1)
    v = _u(rng, (0.35, 0.9))  # metal (grey, gold) or light plastic
    return np.array([v, v * _u(rng, (0.8, 1.0)), v * _u(rng, (0.55, 1.0))], np.float32)


def draw_glasses(image: np.ndarray, eyes: np.ndarray, rng: np.random.Generator,
                 cfg: GlassesConfig | None = None) -> np.ndarray:  # fmt: skip
    """``image`` ``(H, W, 3)`` float in ``[0, 1]`` with a pair of glasses on the face whose eye centres are ``eyes``
    ``(2, 2)`` (x, y) px, left eye first: two lenses (superellipses, sometimes tinted), a bridge, the temples towards
    the ears, sometimes a highlight along the rims. Antialiased (drawn at :data:`SUPERSAMPLE` x)."""
    cfg = cfg or GlassesConfig()
    h, w = image.shape[:2]
    k = SUPERSAMPLE
    left, right = np.asarray(eyes, np.float64)
    d = float(np.linalg.norm(right - left))
    angle = math.atan2(right[1] - left[1], right[0] - left[0]) + math.radians(rng.uniform(-1, 1) * cfg.tilt_deg)
    ax, ay = math.cos(angle), math.sin(angle)  # along the eyes
    down = np.array([-ay, ax])
    a = d * _u(rng, cfg.lens_width) / 2
    b = a * _u(rng, cfg.lens_aspect)
    n = _u(rng, cfg.roundness)
    drop = d * _u(rng, cfg.drop)
    bridge_half = max(d / 2 - a, 0.04 * d)  # the lenses' inner edges, a little apart
    mid = (left + right) / 2 + drop * down
    along = np.array([ax, ay])
    centres = [mid - (bridge_half + a) * along, mid + (bridge_half + a) * along]
    width = d * _log_u(rng, cfg.thickness)
    out = image.astype(np.float32)

    def paint(colour: np.ndarray, alpha: float, lines: list[tuple[np.ndarray, float]] = (),
              fills: list[np.ndarray] = ()) -> None:  # fmt: skip
        """Lay ``colour`` at ``alpha`` over the ``(path, width)`` ``lines`` and inside the closed paths ``fills``."""
        nonlocal out
        canvas = np.zeros((h * k, w * k), np.float32)
        for path, wd in lines:
            _draw_path(canvas, path, wd)
        for path in fills:
            cv2.fillPoly(canvas, [np.round(path * k + (k - 1) / 2.0).astype(np.int32)], 1.0, cv2.LINE_AA)
        cover = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)[..., None] * alpha
        out = out + cover * (colour - out)

    rims = [_superellipse(c, a, b, n, angle) for c in centres]
    if rng.random() < cfg.tint_prob:
        tint_alpha = _u(rng, (0.08, 0.35))  # (drawn before the tint's colour)
        paint(_glasses_colour(rng, cfg), tint_alpha, fills=rims)
    top = -0.55 * b  # the bridge and the temples leave the rims above their middle
    inner = [centres[0] + a * along + top * down, centres[1] - a * along + top * down]
    arch = mid + (top - 0.25 * b) * down
    tt = np.linspace(0.0, 1.0, 12)[:, None]
    bridge = (1 - tt) ** 2 * inner[0] + 2 * (1 - tt) * tt * arch + tt**2 * inner[1]
    temple = d * _u(rng, cfg.temple_length)
    outer = [centres[0] - a * along + top * down, centres[1] + a * along + top * down]
    temples = [np.stack([outer[0], outer[0] - temple * along]), np.stack([outer[1], outer[1] + temple * along])]
    colour = _glasses_colour(rng, cfg)
    paint(colour, _u(rng, (0.75, 1.0)),
          lines=[(r, width) for r in rims] + [(bridge, width * 0.8)] + [(t, width) for t in temples])  # fmt: skip
    if rng.random() < cfg.highlight_prob:  # light catching the upper rims
        upper = [r[(r - c) @ down < -0.3 * b] for r, c in zip(rims, centres)]
        shine = np.clip(colour + _u(rng, (0.25, 0.6)), 0, 1)
        paint(shine, _u(rng, (0.4, 0.9)), lines=[(u, max(0.3, width * 0.35)) for u in upper if len(u) > 1])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def damage_photo(
    image: np.ndarray, rng: np.random.Generator, cfg: DamageConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Age ``image`` ``(H, W, 3)`` float in ``[0, 1]``, draw damage on it and scan it.

    Returns ``(damaged, mask, aged)``: the scanned damaged print ``(H, W, 3)`` float32, the damage mask ``(H, W)``
    float32 in ``{0, 1}`` and the undamaged aged print (before the scan).
    """
    cfg = cfg or DamageConfig()
    h, w = image.shape[:2]
    aged = age(image, rng, cfg)
    out = aged.copy()
    for cover, colour, alpha in damage_layers(h, w, rng, cfg):
        a = (cover * alpha)[..., None]
        # per-pixel strength: the emulsion flakes unevenly along a crack
        a = a * rng.uniform(0.75, 1.0, size=a.shape).astype(np.float32)
        out = out + a * (colour - out)
    mask = (np.abs(out - aged).max(axis=2) >= VISIBLE).astype(np.float32)
    return scan(out, rng, cfg), mask, aged


def scan(image: np.ndarray, rng: np.random.Generator, cfg: DamageConfig) -> np.ndarray:
    """A print's scan: a slight blur, film grain and JPEG, each drawn from ``cfg``."""
    out = image
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), _u(rng, cfg.blur_sigma), borderType=cv2.BORDER_REFLECT)
    g = _u(rng, cfg.grain)
    if g > 0:
        grain = rng.normal(0.0, g, size=out.shape[:2]).astype(np.float32)[..., None]
        out = out + grain
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < cfg.jpeg_prob:
        u8 = np.round(out * 255.0).astype(np.uint8)
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(out, dtype=np.float32)


__all__ = [
    "SUPERSAMPLE",
    "VISIBLE",
    "DamageConfig",
    "GlassesConfig",
    "age",
    "damage_layers",
    "damage_photo",
    "draw_glasses",
    "scan",
]
