//! Structs read from JSON objects only.
//!
//! A struct that derives `Deserialize` also accepts a JSON array of its fields in declaration order, so
//! `"actor": ["user", "u_1"]` would be read as an actor: a quirk of serde that lets a body mean something
//! other than what it looks like. The types of an event take their fields from an object only: they derive
//! with `#[serde(remote = "Self")]`, which makes the derived code an inherent function, and
//! [`objects_only!`] implements the traits around it, handing the derived code a deserializer that reads a
//! map where a struct is asked for.

use serde::de::{Deserializer, Visitor};

/// A deserializer that reads a struct from a map only, and everything else as the inner one would.
pub(crate) struct MapOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// `Deserialize` (and with `serialize`, `Serialize`) for types deriving with `#[serde(remote = "Self")]`,
/// reading them from JSON objects only.
macro_rules! objects_only {
    (serialize: $($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, serializer)
            }
        }
        crate::object::objects_only!($t);
    )*};
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <$t>::deserialize(crate::object::MapOnly(deserializer))
            }
        }
    )*};
}
pub(crate) use objects_only;
