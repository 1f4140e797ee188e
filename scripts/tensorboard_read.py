#!/usr/bin/env python3
"""Read actlab's TensorBoard event files with TensorBoard's own reader and print JSON.

Usage: tensorboard_read.py LOGDIR

For every run folder under LOGDIR (the folders holding event files, named relative to
LOGDIR as TensorBoard's run selector names them): each scalar tag's (step, value)
pairs, each histogram tag's steps with the number of values counted, and what the
HParams dashboard reads (decoded with the hparams plugin's own parsers): the
experiment's hparam and metric names, a session's hparams and its end status. The test
tests/tensorboard.rs compares this with the JSON run records.
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
    HISTOGRAMS,
    SCALARS,
    TENSORS,
)
from tensorboard.plugins.hparams import api_pb2, metadata


def runs(logdir):
    for root, _dirs, files in os.walk(logdir):
        if any("tfevents" in f for f in files):
            yield os.path.relpath(root, logdir), root


def hparams(acc):
    """The hparams plugin's summaries in one run, decoded."""
    out = {}
    try:
        contents = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    except KeyError:
        return out
    for tag, content in contents.items():
        if tag == metadata.EXPERIMENT_TAG:
            e = metadata.parse_experiment_plugin_data(content)
            out["experiment"] = {
                "hparams": [h.name for h in e.hparam_infos],
                "metrics": [m.name.tag for m in e.metric_infos],
            }
        elif tag == metadata.SESSION_START_INFO_TAG:
            s = metadata.parse_session_start_info_plugin_data(content)
            out["session_start"] = {
                "group": s.group_name,
                "hparams": {
                    k: getattr(v, v.WhichOneof("kind")) for k, v in s.hparams.items()
                },
            }
        elif tag == metadata.SESSION_END_INFO_TAG:
            s = metadata.parse_session_end_info_plugin_data(content)
            out["session_end"] = api_pb2.Status.Name(s.status)
    return out


def main():
    logdir = sys.argv[1]
    out = {}
    for name, path in sorted(runs(logdir)):
        acc = EventAccumulator(
            path, size_guidance={SCALARS: 0, HISTOGRAMS: 0, TENSORS: 0}
        )
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
            "hparams": hparams(acc),
        }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
