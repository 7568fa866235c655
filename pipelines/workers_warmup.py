"""Imported only by the server that `rebuild --workers` step processes fork from (pipelines/workers.py, PRELOAD):
work that every video's fresh process would otherwise redo, done once before the fork.

yt-dlp compiles each of its ~1,800 extractors' URL patterns the first time it matches a URL (~0.4 s of CPU, a tenth
of a sample video's rebuild); compiled here, every forked process finds them compiled.
"""
from yt_dlp.extractor import gen_extractor_classes

for _extractor in gen_extractor_classes():
    _extractor.suitable("file:///warm-up.mp4")
