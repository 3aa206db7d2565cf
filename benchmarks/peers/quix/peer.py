"""The Quix Streams peer of the benchmark harness (benchmarks/run.sh).

Args: bootstrap workload guarantee input output application-id state-dir.
Runs the workload with Quix Streams' defaults plus the guarantee and the
commit interval Kafka Streams uses for it, until killed.
"""
import re
import sys

from quixstreams import Application

bootstrap, workload, guarantee, source, sink, app, state_dir = sys.argv[1:8]
eos = guarantee == "exactly_once_v2"
application = Application(
    broker_address=bootstrap,
    consumer_group=app,
    auto_offset_reset="earliest",
    processing_guarantee="exactly-once" if eos else "at-least-once",
    commit_interval=0.1 if eos else 30.0,
    state_dir=state_dir,
)

if workload == "w1":
    src = application.topic(source, key_deserializer="bytes", value_deserializer="json")
    dst = application.topic(sink, key_serializer="bytes", value_serializer="json")
    sdf = application.dataframe(src)
    sdf = sdf.filter(lambda v: v["amount"] % 2 == 0)
    sdf = sdf.apply(lambda v: {"id": v["id"], "user": v["user"], "cents": v["amount"] * 100})
    sdf.to_topic(dst)
else:
    split = re.compile(r"[^\w]+|_")
    src = application.topic(source, key_deserializer="bytes", value_deserializer="string")
    dst = application.topic(sink, key_serializer="string", value_serializer="string")
    sdf = application.dataframe(src)
    sdf = sdf.apply(lambda line: [w for w in split.split(line.lower()) if w], expand=True)
    sdf = sdf.group_by(lambda word: word, name="words")

    def count(word, state):
        n = state.get("n", 0) + 1
        state.set("n", n)
        return str(n)

    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(dst)

application.run()
