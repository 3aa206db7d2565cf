//! `describe()`: a printable view of a topology in Kafka Streams' format.

use std::fmt;

use super::node::{NodeKind, SinkDescription};
use super::Topology;

/// One node as `describe()` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDescription {
    /// A source and the topics it reads.
    Source {
        /// Node name.
        name: String,
        /// Topics read.
        topics: Vec<String>,
        /// Children's names.
        successors: Vec<String>,
    },
    /// A processor and its stores.
    Processor {
        /// Node name.
        name: String,
        /// Connected stores.
        stores: Vec<String>,
        /// Children's names.
        successors: Vec<String>,
        /// Parents' names.
        predecessors: Vec<String>,
    },
    /// A sink and where it writes (`None`: a topic extractor decides per record).
    Sink {
        /// Node name.
        name: String,
        /// The fixed topic, if any.
        topic: Option<String>,
        /// Parents' names.
        predecessors: Vec<String>,
    },
}

/// One sub-topology as `describe()` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    /// The sub-topology number (tasks are named `<id>_<partition>`).
    pub id: u32,
    /// Whether it feeds a global store (it generates no tasks).
    pub global: bool,
    /// Its nodes, in the order they were added.
    pub nodes: Vec<NodeDescription>,
}

/// A topology's structure; `Display` prints it like Kafka Streams'
/// `TopologyDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    /// The sub-topologies, by id.
    pub subtopologies: Vec<SubtopologyDescription>,
}

impl TopologyDescription {
    pub(super) fn new(topology: &Topology) -> Self {
        let names = |idx: &[usize]| idx.iter().map(|&i| topology.nodes[i].name.clone()).collect::<Vec<_>>();
        let subtopologies = topology
            .subtopologies()
            .into_iter()
            .map(|sub| SubtopologyDescription {
                id: sub.id,
                global: sub.global,
                nodes: sub
                    .nodes
                    .iter()
                    .map(|&i| {
                        let node = &topology.nodes[i];
                        match &node.kind {
                            NodeKind::Source { topics, .. } => NodeDescription::Source {
                                name: node.name.clone(),
                                topics: topics.clone(),
                                successors: names(&node.children),
                            },
                            NodeKind::Processor { .. } => NodeDescription::Processor {
                                name: node.name.clone(),
                                stores: node.stores.clone(),
                                successors: names(&node.children),
                                predecessors: names(&node.parents),
                            },
                            NodeKind::Sink { description, .. } => NodeDescription::Sink {
                                name: node.name.clone(),
                                topic: match description {
                                    SinkDescription::Topic(t) => Some(t.clone()),
                                    SinkDescription::Extractor => None,
                                },
                                predecessors: names(&node.parents),
                            },
                        }
                    })
                    .collect(),
            })
            .collect();
        Self { subtopologies }
    }

    /// A Mermaid flowchart of the topology (one subgraph per sub-topology).
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for sub in &self.subtopologies {
            out.push_str(&format!("  subgraph sub{}[\"Sub-topology {}\"]\n", sub.id, sub.id));
            for node in &sub.nodes {
                let (name, label) = match node {
                    NodeDescription::Source { name, topics, .. } => {
                        (name, format!("Source: {name}<br/>{}", topics.join(", ")))
                    }
                    NodeDescription::Processor { name, .. } => (name, format!("Processor: {name}")),
                    NodeDescription::Sink { name, topic, .. } => {
                        (name, format!("Sink: {name}<br/>{}", topic.as_deref().unwrap_or("(topic extractor)")))
                    }
                };
                out.push_str(&format!("    {}[\"{}\"]\n", mermaid_id(name), label));
            }
            out.push_str("  end\n");
            for node in &sub.nodes {
                if let NodeDescription::Source { name, successors, .. }
                | NodeDescription::Processor { name, successors, .. } = node
                {
                    for s in successors {
                        out.push_str(&format!("  {} --> {}\n", mermaid_id(name), mermaid_id(s)));
                    }
                }
            }
        }
        out
    }
}

fn mermaid_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Topologies:")?;
        for sub in &self.subtopologies {
            if sub.global {
                writeln!(f, "   Sub-topology: {} for global store (will not generate tasks)", sub.id)?;
            } else {
                writeln!(f, "   Sub-topology: {}", sub.id)?;
            }
            for node in &sub.nodes {
                match node {
                    NodeDescription::Source { name, topics, successors } => {
                        writeln!(f, "    Source: {name} (topics: [{}])", topics.join(", "))?;
                        writeln!(f, "      --> {}", list(successors))?;
                    }
                    NodeDescription::Processor { name, stores, successors, predecessors } => {
                        writeln!(f, "    Processor: {name} (stores: [{}])", stores.join(", "))?;
                        writeln!(f, "      --> {}", list(successors))?;
                        writeln!(f, "      <-- {}", list(predecessors))?;
                    }
                    NodeDescription::Sink { name, topic, predecessors } => {
                        match topic {
                            Some(t) => writeln!(f, "    Sink: {name} (topic: {t})")?,
                            None => writeln!(f, "    Sink: {name} (topic extractor)")?,
                        }
                        writeln!(f, "      <-- {}", list(predecessors))?;
                    }
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
