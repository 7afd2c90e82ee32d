"""Save a contact sheet of a rendered MP4's frames as PNG, to look at what the engine makes.

python bench/contact_sheet.py out.mp4 sheet.png [--every 3] [--cols 10] [--width 160]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from facecast.video import iter_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("video")
    parser.add_argument("png")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--crop", default=None, help="x0,y0,x1,y1 of each frame to show")
    args = parser.parse_args()
    tiles = []
    for i, frame in enumerate(iter_frames(args.video)):
        if i < args.start or (i - args.start) % args.every:
            continue
        if args.crop:
            x0, y0, x1, y1 = (int(v) for v in args.crop.split(","))
            frame = frame[y0:y1, x0:x1]
        scale = args.width / frame.shape[1]
        tile = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        tile = np.ascontiguousarray(tile)
        cv2.putText(tile, str(i), (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        tiles.append(tile)
        if len(tiles) >= args.count:
            break
    while len(tiles) % args.cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [
        np.concatenate(tiles[r : r + args.cols], axis=1) for r in range(0, len(tiles), args.cols)
    ]
    cv2.imwrite(args.png, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.png} ({len(tiles)} tiles)")


if __name__ == "__main__":
    main()
