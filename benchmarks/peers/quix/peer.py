"""The Quix Streams peer of the benchmark harness (benchmarks/run.sh).

Args: bootstrap workload guarantee input output application-id state-dir.
Runs the workload with Quix Streams' defaults plus the guarantee and the
commit interval Kafka Streams uses for it, until killed.
"""
import re
import sys

from quixstreams import Application
from quixstreams.dataframe.windows import aggregations as agg
from quixstreams.models.serializers import Serializer

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
elif workload in ("w2", "r1"):
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
elif workload == "w3":

    class WindowValue(Serializer):
        """Writes the "count,sum" text of a closed window."""

        def __call__(self, value, ctx):
            return value["v"].encode()

    src = application.topic(source, key_deserializer="bytes", value_deserializer="json")
    dst = application.topic(sink, key_serializer="string", value_serializer=WindowValue())
    sdf = application.dataframe(src)
    sdf = sdf.group_by(lambda p: p["card"], name="card")
    sdf = (
        sdf.tumbling_window(duration_ms=60_000, grace_ms=0)
        .agg(count=agg.Count(), sum=agg.Sum("amount"))
        .final()
    )
    sdf = sdf.apply(
        lambda w, key, ts, headers: {"k": f"{key}@{w['start']}", "v": f"{w['count']},{w['sum']}"},
        metadata=True,
    )
    sdf.to_topic(dst, key=lambda v: v["k"])
elif workload == "w4":
    orders = application.topic(source, key_deserializer="string", value_deserializer="json")
    customers = application.topic(source + "-customers", key_deserializer="string", value_deserializer="string")
    dst = application.topic(sink, key_serializer="string", value_serializer="string")
    sdf = application.dataframe(orders).join_asof(
        application.dataframe(customers),
        how="inner",
        on_merge=lambda o, tier: f"{o['id']},{o['customer']},{o['amount']},{tier}",
    )
    sdf.to_topic(dst)
else:
    sys.exit(f"unknown workload {workload}")

application.run()
