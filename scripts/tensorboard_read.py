#!/usr/bin/env python3
"""Read actlab's TensorBoard event files with TensorBoard's own reader and print JSON.

Usage: tensorboard_read.py LOGDIR

For every run folder under LOGDIR (the folders holding event files, named relative to
LOGDIR as TensorBoard's run selector names them): each scalar tag's (step, value)
pairs, and each histogram tag's steps with the number of values counted. The test
tests/tensorboard.rs compares this with the JSON run records.
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
    HISTOGRAMS,
    SCALARS,
)


def runs(logdir):
    for root, _dirs, files in os.walk(logdir):
        if any("tfevents" in f for f in files):
            yield os.path.relpath(root, logdir), root


def main():
    logdir = sys.argv[1]
    out = {}
    for name, path in sorted(runs(logdir)):
        acc = EventAccumulator(path, size_guidance={SCALARS: 0, HISTOGRAMS: 0})
        acc.Reload()
        tags = acc.Tags()
        out[name] = {
            "scalars": {
                t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]
            },
            "histograms": {
                t: [[e.step, e.histogram_value.num] for e in acc.Histograms(t)]
                for t in tags["histograms"]
            },
        }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
