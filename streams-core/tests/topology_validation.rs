//! Topology construction errors and `describe()` output.

use streams_core::prelude::*;
use streams_core::TopologyError;

struct PassThrough;

impl Processor<String, String> for PassThrough {
    fn process(
        &mut self,
        record: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        ctx.forward(record)
    }
}

struct Length;

impl Processor<String, String, String, i64> for Length {
    fn process(
        &mut self,
        record: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), ProcessorError> {
        let len = i64::try_from(record.value().len()).unwrap_or(i64::MAX);
        ctx.forward(record.with_value(len))
    }
}

fn store(name: &str) -> streams_core::StoreBuilder {
    Stores::key_value_store_builder(Stores::in_memory_key_value_store(name), StringSerde, I64Serde)
}

#[test]
fn unknown_parent_is_rejected() {
    let mut t = Topology::new();
    let err = t.add_processor("p", || PassThrough, &["nowhere"]).err();
    assert_eq!(err, Some(TopologyError::UnknownParent { node: "p".into(), parent: "nowhere".into() }));
}

#[test]
fn duplicate_names_are_rejected() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s", &["a"], StringSerde, StringSerde)?;
    assert_eq!(
        t.add_source("s", &["b"], StringSerde, StringSerde).err(),
        Some(TopologyError::DuplicateNode("s".into()))
    );
    assert_eq!(t.add_processor("s", || PassThrough, &["s"]).err(), Some(TopologyError::DuplicateNode("s".into())));
    t.add_processor("p", || PassThrough, &["s"])?;
    t.add_state_store(store("st"), &["p"])?;
    assert_eq!(t.add_state_store(store("st"), &["p"]).err(), Some(TopologyError::DuplicateStore("st".into())));
    Ok(())
}

#[test]
fn topic_read_twice_is_rejected() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s1", &["a"], StringSerde, StringSerde)?;
    let err = t.add_source("s2", &["b", "a"], StringSerde, StringSerde).err();
    assert_eq!(err, Some(TopologyError::TopicAlreadySubscribed { topic: "a".into(), existing: "s1".into() }));
    assert_eq!(t.add_source("s3", &[], StringSerde, StringSerde).err(), Some(TopologyError::NoTopics("s3".into())));
    Ok(())
}

#[test]
fn sinks_cannot_be_parents_and_children_need_parents() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s", &["a"], StringSerde, StringSerde)?;
    t.add_sink("out", "b", StringSerde, StringSerde, &["s"])?;
    assert_eq!(
        t.add_processor("p", || PassThrough, &["out"]).err(),
        Some(TopologyError::ParentIsSink { node: "p".into(), parent: "out".into() })
    );
    assert_eq!(t.add_processor("q", || PassThrough, &[]).err(), Some(TopologyError::NoParents("q".into())));
    Ok(())
}

#[test]
fn mismatched_types_between_parent_and_child_are_rejected() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s", &["a"], StringSerde, StringSerde)?;
    t.add_processor("len", || Length, &["s"])?;
    let err = t.add_processor("p", || PassThrough, &["len"]).err();
    match err {
        Some(TopologyError::TypeMismatch { parent, child, expected, found }) => {
            assert_eq!((parent.as_str(), child.as_str()), ("len", "p"));
            assert!(expected.contains("String") && found.contains("i64"), "{expected} / {found}");
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    // A sink whose serdes do not fit its parent's output is caught the same way.
    assert!(matches!(
        t.add_sink("out", "b", StringSerde, StringSerde, &["len"]),
        Err(TopologyError::TypeMismatch { .. })
    ));
    t.add_sink("out", "b", StringSerde, I64Serde, &["len"])?;
    Ok(())
}

#[test]
fn stores_must_exist_and_be_used() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s", &["a"], StringSerde, StringSerde)?;
    t.add_processor("p", || PassThrough, &["s"])?;
    assert_eq!(
        t.connect_processor_and_state_stores("p", &["missing"]).err(),
        Some(TopologyError::UnknownStore { processor: "p".into(), store: "missing".into() })
    );
    assert_eq!(t.connect_processor_and_state_stores("s", &[]).err(), Some(TopologyError::UnknownProcessor("s".into())));
    t.add_state_store(store("lonely"), &[])?;
    assert_eq!(t.validate(), Err(TopologyError::UnusedStore("lonely".into())));
    let err = TopologyTestDriver::new(&t).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("lonely"), "{err}");
    t.connect_processor_and_state_stores("p", &["lonely"])?;
    assert_eq!(t.validate(), Ok(()));
    assert_eq!(Topology::new().validate(), Err(TopologyError::NoSources));
    Ok(())
}

#[test]
fn describe_prints_subtopologies_like_kafka_streams() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("source", &["input"], StringSerde, StringSerde)?
        .add_processor("process", || PassThrough, &["source"])?
        .add_state_store(store("counts"), &["process"])?
        .add_sink("to-repartition", "app-repartition", StringSerde, StringSerde, &["process"])?
        .add_source("from-repartition", &["app-repartition"], StringSerde, StringSerde)?
        .add_processor("a", || PassThrough, &["from-repartition"])?
        .add_processor("b", || PassThrough, &["from-repartition"])?
        .add_sink_with(
            "sink",
            SinkSpec::extractor(|k: &String, _: &String, _| k.clone()),
            StringSerde,
            StringSerde,
            &["a", "b"],
        )?;
    let expected = "\
Topologies:
   Sub-topology: 0
    Source: source (topics: [input])
      --> process
    Processor: process (stores: [counts])
      --> to-repartition
      <-- source
    Sink: to-repartition (topic: app-repartition)
      <-- process

   Sub-topology: 1
    Source: from-repartition (topics: [app-repartition])
      --> a, b
    Processor: a (stores: [])
      --> sink
      <-- from-repartition
    Processor: b (stores: [])
      --> sink
      <-- from-repartition
    Sink: sink (topic extractor)
      <-- a, b

";
    assert_eq!(t.describe().to_string(), expected);
    let mermaid = t.describe().to_mermaid();
    assert!(mermaid.contains("from_repartition --> a"), "{mermaid}");
    Ok(())
}

#[test]
fn processors_sharing_a_store_are_one_subtopology() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_source("s1", &["a"], StringSerde, StringSerde)?
        .add_processor("p1", || PassThrough, &["s1"])?
        .add_source("s2", &["b"], StringSerde, StringSerde)?
        .add_processor("p2", || PassThrough, &["s2"])?
        .add_state_store(store("shared"), &["p1", "p2"])?;
    let description = t.describe();
    assert_eq!(description.subtopologies.len(), 1);
    assert_eq!(description.subtopologies[0].nodes.len(), 4);
    Ok(())
}

#[test]
fn global_stores_form_their_own_subtopology_and_do_not_join_others() -> Result<(), TopologyError> {
    let mut t = Topology::new();
    t.add_global_store(
        Stores::key_value_store_builder(Stores::in_memory_key_value_store("customers"), StringSerde, StringSerde)
            .without_logging(),
        "customers-source",
        "customers",
        StringSerde,
        StringSerde,
        "customers-loader",
        || PassThrough,
    )?
    .add_source("orders", &["orders"], StringSerde, StringSerde)?
    .add_processor("enrich", || PassThrough, &["orders"])?
    .connect_processor_and_state_stores("enrich", &["customers"])?
    .add_source("payments", &["payments"], StringSerde, StringSerde)?
    .add_processor("check", || PassThrough, &["payments"])?
    .connect_processor_and_state_stores("check", &["customers"])?;
    let description = t.describe();
    // Using the same global store does not merge `enrich` and `check`.
    assert_eq!(description.subtopologies.len(), 3);
    assert!(description.subtopologies[0].global);
    let text = description.to_string();
    assert!(text.contains("Sub-topology: 0 for global store (will not generate tasks)"), "{text}");
    assert_eq!(t.global_stores().collect::<Vec<_>>(), vec!["customers"]);
    Ok(())
}
