"""Reading the architecture SVG back: its boxes, the box each edge joins, points along edges."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
Rect = tuple[float, float, float, float]


def boxes(root: ET.Element) -> dict[str, tuple[Rect, set[str]]]:
    """Each node box's id: its rectangle and the spec node ids it stands for."""
    out = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            xywh = tuple(float(rect.get(k, "nan")) for k in ("x", "y", "width", "height"))
            members = set(g.get("data-members", "").split())
            out[g.get("id", "")] = ((xywh[0], xywh[1], xywh[2], xywh[3]), members)
    return out


def edge_points(d: str, steps: int = 24) -> list[tuple[float, float]]:
    """Points along an SVG path made of absolute M, L and C commands."""
    tokens = re.findall(r"[MLC]|-?\d+(?:\.\d+)?", d)
    points: list[tuple[float, float]] = []
    i, cur = 0, (0.0, 0.0)
    while i < len(tokens):
        cmd = tokens[i]
        nums = []
        i += 1
        while i < len(tokens) and tokens[i] not in "MLC":
            nums.append(float(tokens[i]))
            i += 1
        if cmd == "M":
            cur = (nums[0], nums[1])
            points.append(cur)
        elif cmd == "L":
            end = (nums[0], nums[1])
            points += [
                (cur[0] + (end[0] - cur[0]) * t / steps, cur[1] + (end[1] - cur[1]) * t / steps)
                for t in range(1, steps + 1)
            ]
            cur = end
        else:
            (x1, y1, x2, y2, x3, y3) = nums
            for k in range(1, steps + 1):
                t = k / steps
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                points.append(
                    (a * cur[0] + b * x1 + c * x2 + e * x3, a * cur[1] + b * y1 + c * y2 + e * y3)
                )
            cur = (x3, y3)
    return points


def inside(point: tuple[float, float], rect: Rect, margin: float = 1.0) -> bool:
    x, y, w, h = rect
    return x + margin < point[0] < x + w - margin and y + margin < point[1] < y + h - margin


def on_side(point: tuple[float, float], rect: Rect, side: str) -> bool:
    """Whether ``point`` is on the top or bottom side of ``rect``."""
    x, y, w, h = rect
    edge_y = y if side == "top" else y + h
    return abs(point[1] - edge_y) < 0.6 and x <= point[0] <= x + w


def joined(root: ET.Element) -> list[tuple[str, str]]:
    """(source box, target box) of every edge path: it leaves a box's bottom, enters a top."""
    rects = {k: rect for k, (rect, _) in boxes(root).items()}
    out = []
    for path in root.iter(f"{SVG}path"):
        if path.get("class") != "edge":
            continue
        points = edge_points(path.get("d", ""))
        src = [k for k, r in rects.items() if on_side(points[0], r, "bottom")]
        dst = [k for k, r in rects.items() if on_side(points[-1], r, "top")]
        assert len(src) == 1 and len(dst) == 1, (path.get("d"), src, dst)
        out.append((src[0], dst[0]))
    return out
