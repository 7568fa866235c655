"""`motionpipe export`: a dataset's shards as the official FOMM/MRAA/TPSMM `train/` and `test/` folders."""
from __future__ import annotations

import argparse

from assets.dataset_config import DATASETS
from storage.export import FORMATS, LAYOUTS, ExportError


def _export(args: argparse.Namespace) -> int:
    from storage.export import export_official_layout
    from storage.root import DataRoot

    try:
        summary = export_official_layout(DataRoot.from_env(args.data_root), args.dataset, args.dest,
                                         fmt=args.format, layout=args.layout, crf=args.crf)
    except OSError as exc:  # disk full, permissions: the message carries the file
        raise ExportError(f"{args.dest}: {exc}") from exc
    print(f"{summary.n_chunks} chunks in {summary.dest}: set `dataset_params.root_dir: {summary.dest}` in the "
          f"official config")
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a dataset's published shards as the official repositories' train/ and test/ folders "
                       "(FOMM, MRAA, TPSMM run.py; mp4 also Monkey-Net), updating an earlier export in place")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("dest", help="the folder to write: new, empty, or an earlier export of the same dataset and format")
    p.add_argument("--layout", choices=LAYOUTS, default="fomm",
                   help="fomm: <dest>/{train,test}/<video_id>#<start>#<end>.mp4, the layout FOMM, MRAA and TPSMM read")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="png (default): a folder of 0000000.png... per chunk, exactly the stored pixels, the faster "
                        "to train from; mp4: one H.264 file per chunk at its own fps")
    p.add_argument("--crf", type=int, default=18, choices=range(0, 52), metavar="0-51",
                   help="x264 quality of mp4 files (lower is better; default 18)")
    p.add_argument("--data-root", default=None,
                   help="local folder or fsspec URL (default: $MOTIONPIPE_DATA_ROOT or ./data)")
    p.set_defaults(func=_export)
