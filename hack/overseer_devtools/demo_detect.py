"""Send a generated picture to a /detect endpoint; print what it found against what was drawn, and
write the picture with both sets of boxes to a file.

    python -m overseer_devtools.demo_detect call URL [--picture N] [--large] [--out FILE]
    python -m overseer_devtools.demo_detect serve MODEL [--picture N] [--large] [--out FILE]

`call` posts to a running server (URL is its base, e.g. http://127.96.0.10:3000, or the full
/detect URL). `serve` first starts `overseer serve` on loopback with MODEL, one of the trained
toy detectors (`make models`: shapes-v1, shapes-v2, shapes-swapped, shapes-blind), and stops it
afterwards. The picture is held-out picture N (never trained on; 160x160, 1-3 shapes), or with
`--large` a 640x640 picture of 3-5 small shapes (what `resize_resolution` is about).

Exit status: 0 when the answer found every drawn shape (its class, IoU >= 0.5) and nothing else
with confidence 0.5 or more, 3 when it did not (the picture shows how), 1 when the endpoint could
not be asked, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from overseer_devtools import shapes
from overseer_devtools.scoring import Match, match

if TYPE_CHECKING:
    from PIL.Image import Image

SCALE = 3  # a 160x160 picture is small on a screen: the file is drawn three times larger
DRAWN = (0, 170, 0)  # green: what was drawn
FOUND = {"square": (220, 0, 0), "circle": (0, 60, 230)}  # the detector's boxes, in their class's colour
OTHER = (255, 140, 0)


def picture(index: int, *, large: bool) -> shapes.Scene:
    if large:
        return shapes.scene(index, size=(640, 640), side=(28, 36), count=(3, 5))
    return shapes.scene(index)


def ask(url: str, item: shapes.Scene) -> dict[str, Any]:
    endpoint = url if url.rstrip("/").endswith("/detect") else url.rstrip("/") + "/detect"
    answer = httpx.post(endpoint, files={"image": ("picture.png", item.png(), "image/png")}, timeout=60)
    if answer.status_code != 200:
        raise RuntimeError(f"{endpoint} answered {answer.status_code}: {answer.text[:500]}")
    body: dict[str, Any] = answer.json()
    return body


def confident(result: Match, threshold: float = 0.5) -> bool:
    """What a user expects of a good detector: every shape found, no confident extra."""
    return not result.missed and not [d for d in result.extra if d["confidence"] >= threshold]


def annotate(item: shapes.Scene, detections: list[dict[str, Any]]) -> Image:
    """The picture, scaled up, with the drawn boxes (green) and the found ones (labelled)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    width, height = item.size
    scale = SCALE if max(width, height) <= 320 else 1
    canvas = item.image.resize((width * scale, height * scale), PILImage.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for shape in item.shapes:
        draw.rectangle([v * scale for v in shape.box], outline=DRAWN, width=2)
    for d in detections:
        box = [v * scale for v in d["box"]]
        colour = FOUND.get(d["class_name"], OTHER)
        draw.rectangle(box, outline=colour, width=3)
        label = f"{d['class_name']} {d['confidence']:.2f}"
        top = max(box[1] - 17, 0)
        draw.rectangle(draw.textbbox((box[0], top), label, font=font), fill=colour)
        draw.text((box[0], top), label, fill=(255, 255, 255), font=font)
    return canvas


def report(url: str, index: int, *, large: bool, out: Path) -> int:
    item = picture(index, large=large)
    try:
        answer = ask(url, item)
    except (httpx.HTTPError, RuntimeError, json.JSONDecodeError) as error:
        print(f"demo_detect: error: {error}", file=sys.stderr)
        return 1
    detections = answer["detections"]
    result = match(detections, item.shapes)
    model = answer["model"]
    width, height = item.size
    print(f"picture {index} ({width}x{height}, held out): {len(item.shapes)} shapes drawn")
    print(f"model {model['name']}:{model['version']} ({model['digest'][:19]}...) answered {len(detections)} boxes")
    for line in result.describe().splitlines():
        print(f"  {line}")
    verdict = "right" if confident(result) else "WRONG"
    print(f"{verdict}: found {len(result.found)} of {len(item.shapes)} drawn shapes, {len(result.extra)} extra boxes")
    out.parent.mkdir(parents=True, exist_ok=True)
    annotate(item, detections).save(out)
    print(f"wrote {out} (green: drawn; red squares / blue circles: found, with confidence)")
    return 0 if confident(result) else 3


def serve_and_report(model_name: str, index: int, *, large: bool, out: Path) -> int:
    from overseer_devtools.localserver import running
    from overseer_devtools.models import shapes_model

    model = shapes_model(model_name)
    schema = {
        "name": "object-detector",
        "version": 1,
        "labels": {"type": "object"},
        "metadata": {"type": "object"},
        "customObjects": {"type": "object", "properties": {"resize_resolution": {"type": "integer", "default": 160}}},
    }
    custom_objects = {"conf": 0.25, "resize_resolution": 640 if large else 160}
    served = {"name": "shapes", "version": model_name, "uri": model.uri, "digest": model.digest}
    document = {"model": {**served, "customObjects": custom_objects}, "schema": schema}
    with tempfile.TemporaryDirectory(prefix="demo-detect-") as work, running(Path(work), document, token="demo") as srv:
        return report(srv.url, index, large=large, out=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overseer_devtools.demo_detect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    call = sub.add_parser("call", help="ask a running /detect")
    call.add_argument("url")
    serve = sub.add_parser("serve", help="serve a trained toy detector on loopback, then ask it")
    serve.add_argument("model", choices=["shapes-v1", "shapes-v2", "shapes-swapped", "shapes-blind"])
    for p in (call, serve):
        p.add_argument("--picture", type=int, default=0, help="which held-out picture (default 0)")
        p.add_argument("--large", action="store_true", help="a 640x640 picture of small shapes")
        p.add_argument("--out", type=Path, help="where to write the annotated picture (default: ./detect-N.png)")
    args = parser.parse_args(argv)
    if args.picture < 0:
        parser.error("--picture must be 0 or more")
    out = args.out or Path(f"detect-{args.picture}{'-large' if args.large else ''}.png")
    if args.command == "call":
        return report(args.url, args.picture, large=args.large, out=out)
    return serve_and_report(args.model, args.picture, large=args.large, out=out)


if __name__ == "__main__":
    sys.exit(main())
