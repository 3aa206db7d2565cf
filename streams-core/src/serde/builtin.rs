//! The built-in serdes, with the byte layouts of Kafka's Java serdes.

use super::{Serde, SerdeError};
use crate::record::Headers;

fn non_null<'a>(topic: &str, data: Option<&'a [u8]>, type_name: &'static str) -> Result<&'a [u8], SerdeError> {
    data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name })
}

fn fixed<const N: usize>(topic: &str, data: Option<&[u8]>, type_name: &'static str) -> Result<[u8; N], SerdeError> {
    let bytes = non_null(topic, data, type_name)?;
    bytes.try_into().map_err(|_| SerdeError::WrongSize {
        topic: topic.to_owned(),
        type_name,
        expected: N,
        actual: bytes.len(),
    })
}

/// Raw bytes, unchanged (Kafka's `ByteArraySerde`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde for BytesSerde {
    type Target = Vec<u8>;
    fn serialize(&self, _topic: &str, _headers: &mut Headers, data: &Vec<u8>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.clone()))
    }
    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        non_null(topic, data, "Vec<u8>").map(<[u8]>::to_vec)
    }
    fn to_json(&self, data: &Vec<u8>) -> Option<serde_json::Value> {
        Some(match std::str::from_utf8(data) {
            Ok(text) => serde_json::Value::String(text.to_owned()),
            Err(_) => serde_json::Value::from(data.as_slice()),
        })
    }
    fn read_text(&self, text: &str) -> Option<Result<Vec<u8>, SerdeError>> {
        Some(Ok(text.as_bytes().to_vec()))
    }
}

/// UTF-8 text (Kafka's `StringSerde`). Invalid UTF-8 is an error, not replaced.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde for StringSerde {
    type Target = String;
    fn serialize(&self, _topic: &str, _headers: &mut Headers, data: &String) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(data.as_bytes().to_vec()))
    }
    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = non_null(topic, data, "String")?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|source| SerdeError::InvalidUtf8 { topic: topic.to_owned(), source })
    }
    fn to_json(&self, data: &String) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(data.clone()))
    }
    fn read_text(&self, text: &str) -> Option<Result<String, SerdeError>> {
        Some(Ok(text.to_owned()))
    }
}

macro_rules! be_serde {
    ($(#[$doc:meta])* $name:ident, $t:ty, $n:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde for $name {
            type Target = $t;
            fn serialize(&self, _topic: &str, _headers: &mut Headers, data: &$t) -> Result<Option<Vec<u8>>, SerdeError> {
                Ok(Some(data.to_be_bytes().to_vec()))
            }
            fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<$t, SerdeError> {
                fixed::<$n>(topic, data, stringify!($t)).map(<$t>::from_be_bytes)
            }
            fn to_json(&self, data: &$t) -> Option<serde_json::Value> {
                Some(serde_json::Value::from(*data))
            }
            fn read_text(&self, text: &str) -> Option<Result<$t, SerdeError>> {
                Some(text.trim().parse::<$t>().map_err(|e| SerdeError::Text {
                    text: text.to_owned(),
                    type_name: stringify!($t),
                    reason: e.to_string(),
                }))
            }
        }
    };
}

be_serde!(
    /// A 4-byte big-endian signed integer (Kafka's `IntegerSerde`).
    I32Serde, i32, 4
);
be_serde!(
    /// An 8-byte big-endian signed integer (Kafka's `LongSerde`).
    I64Serde, i64, 8
);
be_serde!(
    /// An 8-byte big-endian unsigned integer (the same bytes as `LongSerde`
    /// for values below 2^63).
    U64Serde, u64, 8
);
be_serde!(
    /// An 8-byte big-endian IEEE 754 double (Kafka's `DoubleSerde`).
    F64Serde, f64, 8
);

/// The unit type, always written as null (Kafka's `VoidSerde`). Reading
/// non-null bytes is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde for UnitSerde {
    type Target = ();
    fn serialize(&self, _topic: &str, _headers: &mut Headers, _data: &()) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<(), SerdeError> {
        match data {
            None => Ok(()),
            Some(bytes) => Err(SerdeError::WrongSize {
                topic: topic.to_owned(),
                type_name: "()",
                expected: 0,
                actual: bytes.len(),
            }),
        }
    }
}

/// Any serde, made to accept Kafka's null as `None` (an absent key, a tombstone).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nullable<S>(pub S);

impl<S: Serde> Serde for Nullable<S> {
    type Target = Option<S::Target>;
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Headers,
        data: &Option<S::Target>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        match data {
            Some(value) => self.0.serialize(topic, headers, value),
            None => Ok(None),
        }
    }
    fn deserialize(
        &self,
        topic: &str,
        headers: &Headers,
        data: Option<&[u8]>,
    ) -> Result<Option<S::Target>, SerdeError> {
        match data {
            Some(_) => self.0.deserialize(topic, headers, data).map(Some),
            None => Ok(None),
        }
    }
    fn to_json(&self, data: &Option<S::Target>) -> Option<serde_json::Value> {
        match data {
            Some(value) => self.0.to_json(value),
            None => Some(serde_json::Value::Null),
        }
    }
    fn read_text(&self, text: &str) -> Option<Result<Option<S::Target>, SerdeError>> {
        self.0.read_text(text).map(|r| r.map(Some))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<S: Serde>(serde: &S, value: &S::Target) -> Result<S::Target, SerdeError> {
        let mut headers = Headers::new();
        let bytes = serde.serialize("t", &mut headers, value)?;
        serde.deserialize("t", &headers, bytes.as_deref())
    }

    #[test]
    fn integers_use_kafka_big_endian_layout() -> Result<(), SerdeError> {
        let mut h = Headers::new();
        assert_eq!(I32Serde.serialize("t", &mut h, &1)?, Some(vec![0, 0, 0, 1]));
        assert_eq!(I64Serde.serialize("t", &mut h, &-1)?, Some(vec![0xff; 8]));
        assert_eq!(F64Serde.serialize("t", &mut h, &1.0)?, Some(vec![0x3f, 0xf0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(round_trip(&I32Serde, &i32::MIN)?, i32::MIN);
        assert_eq!(round_trip(&I64Serde, &i64::MAX)?, i64::MAX);
        assert_eq!(round_trip(&U64Serde, &u64::MAX)?, u64::MAX);
        assert_eq!(round_trip(&F64Serde, &-2.5)?, -2.5);
        Ok(())
    }

    #[test]
    fn truncated_integer_is_a_typed_error_naming_the_topic() {
        let err = I64Serde.deserialize("payments", &Headers::new(), Some(&[1, 2, 3]));
        match err {
            Err(SerdeError::WrongSize { topic, expected: 8, actual: 3, .. }) => assert_eq!(topic, "payments"),
            other => panic!("unexpected {other:?}"),
        }
        let err = I32Serde.deserialize("t", &Headers::new(), Some(&[1, 2, 3, 4, 5]));
        assert!(matches!(err, Err(SerdeError::WrongSize { expected: 4, actual: 5, .. })));
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_replacement() {
        let err = StringSerde.deserialize("lines", &Headers::new(), Some(&[0x66, 0xff, 0x6f]));
        match err {
            Err(e @ SerdeError::InvalidUtf8 { .. }) => {
                assert_eq!(e.topic(), "lines");
                assert!(e.to_string().contains("invalid UTF-8"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn null_needs_nullable() -> Result<(), SerdeError> {
        assert!(matches!(StringSerde.deserialize("t", &Headers::new(), None), Err(SerdeError::UnexpectedNull { .. })));
        assert_eq!(Nullable(StringSerde).deserialize("t", &Headers::new(), None)?, None);
        assert_eq!(round_trip(&Nullable(StringSerde), &Some("x".to_owned()))?, Some("x".to_owned()));
        assert_eq!(Nullable(I64Serde).serialize("t", &mut Headers::new(), &None)?, None);
        Ok(())
    }

    #[test]
    fn unit_is_null() -> Result<(), SerdeError> {
        assert_eq!(UnitSerde.serialize("t", &mut Headers::new(), &())?, None);
        assert!(UnitSerde.deserialize("t", &Headers::new(), Some(b"x")).is_err());
        Ok(())
    }
}
