#!/usr/bin/env python3
"""Turn shiftright's decisions topic into a flagd kill-switch overlay.

flagd merges its sync sources in order and a later source overrides an earlier one per flag key;
a flag whose `state` is DISABLED evaluates to the application's code default. So this consumer
writes one file that lists only the flags to kill, and flagd takes it as its last source:

    flagd start --uri file:flags.json --uri file:killed.flagd.json

Each `disable` decision (a ROLLBACK) adds the experiment's flag to the file; a later decision of
the same experiment that is not `disable` (a new revision that is healthy) removes it. The file is
written whole to a temporary name and renamed, so flagd never reads half of it. Heartbeats repeat
the current verdict: a consumer that starts late still converges on every experiment's state.

Usage:
    python3 decisions_to_flagd.py --brokers HOST:PORT --topic shiftright.decisions \\
        --out killed.flagd.json [--flag EXPERIMENT=FLAG_KEY ...] [--once]

Needs `pip install confluent-kafka`. --once stops when the topic is read to its end (for tests
and cron jobs); without it the consumer runs until interrupted.
"""

import argparse
import json
import os
import sys
import tempfile

from confluent_kafka import Consumer, KafkaException, TopicPartition


def overlay(killed):
    """A flagd flags file in which every killed flag is DISABLED."""
    return {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            key: {
                "state": "DISABLED",
                "variants": {"off": False},
                "defaultVariant": "off",
                "metadata": {"shiftright_decision": decision},
            }
            for key, decision in sorted(killed.items())
        },
    }


def write_atomically(path, document):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".killed-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", default="shiftright.decisions")
    parser.add_argument("--out", required=True, help="the overlay file flagd reads")
    parser.add_argument("--flag", action="append", default=[], metavar="EXPERIMENT=FLAG_KEY",
                        help="the flag key of an experiment (default: the experiment's own name)")
    parser.add_argument("--group", default="shiftright-flagd")
    parser.add_argument("--once", action="store_true", help="stop at the end of the topic")
    args = parser.parse_args()
    flags = dict(f.split("=", 1) for f in args.flag)

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = metadata.topics[args.topic].partitions
    if not partitions:
        sys.exit(f"topic {args.topic} has no partitions (does it exist?)")
    # Every partition from its start: the file is rebuilt from the decisions themselves.
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)[1] for p in partitions}
    done = {p for p, end in ends.items() if end == 0}
    killed = {}
    written = None
    try:
        while True:
            if args.once and done == set(partitions):
                break
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            decision = json.loads(message.value())
            key = flags.get(decision["experiment"], decision["experiment"])
            if decision["action"] == "disable":
                killed[key] = decision["decision_id"]
            else:
                killed.pop(key, None)
            if killed != written:
                write_atomically(args.out, overlay(killed))
                written = dict(killed)
                print(f"{args.out}: {len(killed)} flag(s) disabled: {', '.join(sorted(killed)) or 'none'}", flush=True)
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                done.add(message.partition())
    finally:
        consumer.close()
    if written is None:
        write_atomically(args.out, overlay(killed))


if __name__ == "__main__":
    main()
