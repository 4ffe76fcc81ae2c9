//! A walk over a value that finds floats JSON cannot carry.
//!
//! `serde_json` writes NaN and ±infinity as `null`, which then does not
//! decode back into a float: a session holding one would reset (or fail)
//! on every later load. [`check`] refuses such a value before it is stored.
//! It serializes into nothing, so it allocates nothing and costs one walk.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Serializer};

/// The value holds a float that is NaN or infinite.
#[derive(Debug)]
pub(crate) struct NonFinite;

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "NaN and infinite floats cannot be stored as JSON (they would read back as null)",
        )
    }
}

impl std::error::Error for NonFinite {}

/// Why the walk stopped: a non-finite float, or an error of the value's own
/// `Serialize` impl (not ours to report: the encoder meets it too).
#[derive(Debug)]
enum Stop {
    NonFinite,
    Custom,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Stop::Custom
    }
}

/// `Err` when `value` contains a NaN or infinite `f32`/`f64` anywhere.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), NonFinite> {
    match value.serialize(Walk) {
        Err(Stop::NonFinite) => Err(NonFinite),
        Ok(()) | Err(Stop::Custom) => Ok(()),
    }
}

/// Serializes into nothing; stops at the first non-finite float.
struct Walk;

fn float(finite: bool) -> Result<(), Stop> {
    if finite { Ok(()) } else { Err(Stop::NonFinite) }
}

macro_rules! accept {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), Stop> { Ok(()) })*
    };
}

macro_rules! compound {
    ($($trait:ident :: $method:ident $(($name:ty))?),* $(,)?) => {
        $(
            impl ser::$trait for Walk {
                type Ok = ();
                type Error = Stop;
                fn $method<T: Serialize + ?Sized>(&mut self, $(_: $name,)? value: &T) -> Result<(), Stop> {
                    value.serialize(Walk)
                }
                fn end(self) -> Result<(), Stop> {
                    Ok(())
                }
            }
        )*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        key.serialize(Walk)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        value.serialize(Walk)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl Serializer for Walk {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<(), Stop> {
        float(v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Stop> {
        float(v.is_finite())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn finds_non_finite_floats_anywhere() {
        assert!(check(&1.0_f64).is_ok());
        assert!(check(&f64::NAN).is_err());
        assert!(check(&f32::INFINITY).is_err());
        assert!(check(&vec![vec![0.5], vec![f64::NEG_INFINITY]]).is_err());
        let map: std::collections::BTreeMap<&str, f64> = [("a", 1.0), ("b", f64::NAN)].into();
        assert!(check(&map).is_err());
        assert!(check(&Some((1_u8, "x", f32::NAN))).is_err());
        assert!(check(&("null", None::<f64>, ())).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_is_finite(values in proptest::collection::vec(proptest::num::f64::ANY, 0..8)) {
            proptest::prop_assert_eq!(check(&values).is_ok(), values.iter().all(|v| v.is_finite()));
        }
    }
}
