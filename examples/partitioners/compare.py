"""By hand (not in CI): do sarama's, kafka-go's and kafkajs's partitioners put MSISDN keys where Java's does?

    .venv/bin/python examples/partitioners/compare.py [PARTITIONS]      # default 12

Needs Go (the Go module proxy fetches sarama and kafka-go), Node.js with ``npm install`` run in ``node/``,
Java, and the broker's jars (``make kafka-jars``).
The reference is Kafka's own ``BuiltInPartitioner.partitionForKey`` (``java/PartitionFor.java``), run from
the kafka-clients jar the local broker uses; aiokafka's ``DefaultPartitioner`` is compared too. Prints, for
each partitioner, how many of the MSISDNs in ``msisdns.txt`` it places where Java does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from ecash_dev.kafka import KAFKA_VERSION, default_cache_dir

HERE = Path(__file__).resolve().parent


def run(command: list[str], cwd: Path, stdin: str) -> str:
    done = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout


def main(partitions: int) -> int:
    msisdns = (HERE / "msisdns.txt").read_text(encoding="utf-8").split()
    text = "\n".join(msisdns) + "\n"
    libs = default_cache_dir(os.environ) / f"kafka-{KAFKA_VERSION}" / "libs"
    java = shutil.which("java") or "java"
    java_out = run([java, "-cp", f"{libs}/*", "java/PartitionFor.java", str(partitions)], HERE, text)
    reference = {m: int(p) for m, p in (line.split() for line in java_out.splitlines())}
    everything = list(range(partitions))
    columns: dict[str, dict[str, int]] = {
        "aiokafka DefaultPartitioner": {
            m: DefaultPartitioner()(m.encode(), everything, everything) for m in msisdns
        }
    }
    for command, cwd in (
        (["go", "run", ".", str(partitions)], HERE / "go"),
        (["node", "partitions.js", str(partitions)], HERE / "node"),
    ):
        lines = run(command, cwd, text).splitlines()
        names = lines[0].split()[1:]
        for line in lines[1:]:
            msisdn, *found = line.split()
            for name, partition in zip(names, found, strict=True):
                columns.setdefault(name, {})[msisdn] = int(partition)
    print(f"{len(msisdns)} MSISDNs, {partitions} partitions; reference: Java's BuiltInPartitioner")
    for name, placed in columns.items():
        same = sum(placed[m] == reference[m] for m in msisdns)
        print(f"  {name:<28} {same:>4} of {len(msisdns)} where Java puts them ({same / len(msisdns):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 12))
