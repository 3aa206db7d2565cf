//! Serde round trips over arbitrary values, and error cases that must never panic.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use streams_core::prelude::*;
use streams_core::serde::{SerdeError, UnitSerde};

fn round_trip<S: Serde>(serde: &S, value: &S::Target) -> Result<S::Target, SerdeError> {
    let mut headers = Headers::new();
    let bytes = serde.serialize("t", &mut headers, value)?;
    serde.deserialize("t", &headers, bytes.as_deref())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: String,
    amount: i64,
    tags: Vec<String>,
    note: Option<String>,
}

proptest! {
    #[test]
    fn strings_round_trip(s in ".*") {
        prop_assert_eq!(round_trip(&StringSerde, &s)?, s);
    }

    #[test]
    fn integers_round_trip(a in any::<i32>(), b in any::<i64>(), c in any::<u64>()) {
        prop_assert_eq!(round_trip(&I32Serde, &a)?, a);
        prop_assert_eq!(round_trip(&I64Serde, &b)?, b);
        prop_assert_eq!(round_trip(&U64Serde, &c)?, c);
    }

    #[test]
    fn doubles_round_trip_bit_for_bit(f in any::<f64>()) {
        prop_assert_eq!(round_trip(&F64Serde, &f)?.to_bits(), f.to_bits());
    }

    #[test]
    fn json_round_trips(order_id in "[a-z0-9]{1,12}", amount in any::<i64>(), tags in prop::collection::vec(".*", 0..4), note in prop::option::of(".*")) {
        let order = Order { order_id, amount, tags, note };
        prop_assert_eq!(round_trip(&JsonSerde::<Order>::new(), &order)?, order.clone());
        prop_assert_eq!(round_trip(&Nullable(JsonSerde::<Order>::new()), &Some(order.clone()))?, Some(order));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let h = Headers::new();
        let data = Some(bytes.as_slice());
        let _ = StringSerde.deserialize("t", &h, data);
        let _ = I32Serde.deserialize("t", &h, data);
        let _ = I64Serde.deserialize("t", &h, data);
        let _ = U64Serde.deserialize("t", &h, data);
        let _ = F64Serde.deserialize("t", &h, data);
        let _ = UnitSerde.deserialize("t", &h, data);
        let _ = JsonSerde::<Order>::new().deserialize("t", &h, data);
        prop_assert_eq!(BytesSerde.deserialize("t", &h, data)?, bytes.clone());
    }
}

#[test]
fn json_errors_say_what_and_where() {
    let err = JsonSerde::<Order>::new().deserialize("orders", &Headers::new(), Some(br#"{"order_id": 5}"#));
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("orders") && text.contains("Order") && text.contains("line 1"), "{text}");
}
