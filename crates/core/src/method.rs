//! The plug-in kinds of a condensation method, declared once (the `method_kinds!` call in lib.rs):
//! [`Method`] has one field per kind, and whatever holds "one of each" is a `Method` over a
//! [`Hold`]er: an experiment's names and options, the built plug-ins ([`Shared`]), the engine's
//! borrowed view ([`Borrowed`]), the registry of each kind. [`Method::generate`] and
//! [`Method::try_map`] go over the kinds, so that nothing else lists them.
//!
//! A new kind is its trait, one line in that call, and its registrations: the experiment file, the
//! resolved experiment, the provenance and the registry follow.

use crate::{Method, Selection};
use std::sync::Arc;

/// One question a method answers, as the trait object of its plug-ins (`dyn Distance`).
pub trait Kind: 'static {
    /// The method's field and the experiment file's table: `distance`.
    const FIELD: &'static str;
    /// The plug-in a method takes when its experiment leaves the kind out (the paper's DC).
    const DEFAULT: &'static str;
    /// For messages and listings: `distance`, `distances`.
    const NOUN: &'static str;
    const NOUNS: &'static str;
}

/// A kind's [`Kind`] constants as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindFacts {
    pub field: &'static str,
    pub default: &'static str,
    pub noun: &'static str,
    pub nouns: &'static str,
}

/// How a method holds each of its plug-ins: `Of<dyn Distance>` is what it holds for the distance.
pub trait Hold {
    type Of<K: ?Sized + Kind>;
}

/// A holder whose value of each kind follows from the kind alone (its default plug-in, named):
/// what a method reads where its file leaves a kind out.
pub trait HoldDefault: Hold {
    fn default_of<K: ?Sized + Kind>() -> Self::Of<K>;
}

/// The built plug-ins, shared (an experiment resolved once, run by many jobs).
pub struct Shared;

impl Hold for Shared {
    type Of<K: ?Sized + Kind> = Arc<K>;
}

/// The plug-ins borrowed, as the engine's loop takes them.
pub struct Borrowed<'a>(std::marker::PhantomData<&'a ()>);

impl<'a> Hold for Borrowed<'a> {
    type Of<K: ?Sized + Kind> = &'a K;
}

/// A function over every kind: what [`Method::try_map`] applies to each field.
pub trait EachKind<'a, A: Hold, B: Hold> {
    type Error;
    fn each<K: ?Sized + Kind>(&mut self, from: &'a A::Of<K>) -> Result<B::Of<K>, Self::Error>;
}

/// A function over every kind of two methods, field by field: what [`Method::try_zip`] applies.
pub trait ZipKind<'a, 'b, A: Hold, B: Hold, C: Hold> {
    type Error;
    fn each<K: ?Sized + Kind>(&mut self, a: &'a A::Of<K>, b: &'b B::Of<K>) -> Result<C::Of<K>, Self::Error>;
}

/// Nothing of each kind: the holder of a walk over the kinds that keeps no value.
pub struct Nothing;

impl Hold for Nothing {
    type Of<K: ?Sized + Kind> = ();
}

/// A function of the kind alone: what [`Method::generate`] calls for each field.
pub trait ForKind<H: Hold> {
    fn make<K: ?Sized + Kind>(&mut self) -> H::Of<K>;
}

/// How a plug-in becomes the trait object of its kind: `dyn Distance` holds every `P: Distance`.
pub trait Holds<P> {
    fn boxed(plugin: P) -> Box<Self>;
}

macro_rules! holds {
    ($($trait:ident),*) => {$(
        impl<P: $trait + 'static> Holds<P> for dyn $trait {
            fn boxed(plugin: P) -> Box<Self> {
                Box::new(plugin)
            }
        }
    )*};
}

// A coreset's kind, not a method's.
holds!(Selection);

/// The one list (in lib.rs, beside the kinds' traits): `field: dyn Trait = default plug-in, noun,
/// nouns; doc`. Makes [`Method`], its walks and its serde, in a module of its own.
macro_rules! method_kinds {
    ($($(#[doc = $doc:literal])* $field:ident: dyn $trait:ident = $default:literal, $noun:literal, $nouns:literal;)*) => {
    mod kinds {
        // The kinds' traits, by the names the list gives them, and the machinery of `method`.
        use super::*;
        use $crate::method::{EachKind, ForKind, Hold, HoldDefault, Holds, Kind, KindFacts, ZipKind};
        use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
        use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
        use std::fmt;
        use std::result::Result;

        holds!($($trait),*);

        $(impl Kind for dyn $trait {
            const FIELD: &'static str = stringify!($field);
            const DEFAULT: &'static str = $default;
            const NOUN: &'static str = $noun;
            const NOUNS: &'static str = $nouns;
        })*

        /// The plug-ins of a condensation method, one per kind, held as `H` holds them.
        pub struct Method<H: Hold> {
            $($(#[doc = $doc])* pub $field: H::Of<dyn $trait>,)*
        }

        /// The kinds' fields, in declaration order.
        pub const METHOD_FIELDS: &[&str] = &[$(stringify!($field)),*];

        /// What each kind says of itself, in declaration order: for what lists the kinds (flags, help).
        pub const METHOD_KINDS: &[KindFacts] = &[$(KindFacts {
            field: stringify!($field),
            default: $default,
            noun: $noun,
            nouns: $nouns,
        }),*];

        impl<H: Hold> Method<H> {
            /// A method whose value of each kind `f` makes from the kind.
            pub fn generate(f: &mut impl ForKind<H>) -> Method<H> {
                Method { $($field: f.make::<dyn $trait>(),)* }
            }

            /// The method whose every field is `f` of this one's, in field order; the first error stops it.
            pub fn try_map<'a, B: Hold, F: EachKind<'a, H, B>>(&'a self, f: &mut F) -> Result<Method<B>, F::Error> {
                Ok(Method { $($field: f.each::<dyn $trait>(&self.$field)?,)* })
            }

            /// The method whose every field is `f` of this one's and `other`'s, in field order.
            pub fn try_zip<'a, 'b, B: Hold, C: Hold, F: ZipKind<'a, 'b, H, B, C>>(
                &'a self,
                other: &'b Method<B>,
                f: &mut F,
            ) -> Result<Method<C>, F::Error> {
                Ok(Method { $($field: f.each::<dyn $trait>(&self.$field, &other.$field)?,)* })
            }
        }

        impl<H: Hold> Clone for Method<H> where $(H::Of<dyn $trait>: Clone,)* {
            fn clone(&self) -> Method<H> {
                Method { $($field: self.$field.clone(),)* }
            }
        }

        impl<H: Hold> Copy for Method<H> where $(H::Of<dyn $trait>: Copy,)* {}

        impl<H: Hold> PartialEq for Method<H> where $(H::Of<dyn $trait>: PartialEq,)* {
            fn eq(&self, other: &Method<H>) -> bool {
                true $(&& self.$field == other.$field)*
            }
        }

        impl<H: Hold> fmt::Debug for Method<H> where $(H::Of<dyn $trait>: fmt::Debug,)* {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Method")$(.field(stringify!($field), &self.$field))*.finish()
            }
        }

        /// As a struct of its fields, in declaration order.
        impl<H: Hold> Serialize for Method<H> where $(H::Of<dyn $trait>: Serialize,)* {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut s = serializer.serialize_struct("Method", METHOD_FIELDS.len())?;
                $(s.serialize_field(stringify!($field), &self.$field)?;)*
                s.end()
            }
        }

        impl<H: HoldDefault> Method<H> where $(H::Of<dyn $trait>: Serialize + PartialEq,)* {
            /// As a map of the fields that differ from their kind's default, in declaration order:
            /// what identifies a method, unchanged when a kind with a default is added (`{}` for DC).
            pub fn serialize_departures<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                $(if self.$field != H::default_of::<dyn $trait>() {
                    map.serialize_entry(stringify!($field), &self.$field)?;
                })*
                map.end()
            }
        }

        /// Every field optional (its kind's default), none unknown.
        impl<'de, H: HoldDefault> Deserialize<'de> for Method<H> where $(H::Of<dyn $trait>: Deserialize<'de>,)* {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Method<H>, D::Error> {
                struct Fields<H>(std::marker::PhantomData<H>);
                impl<'de, H: HoldDefault> Visitor<'de> for Fields<H> where $(H::Of<dyn $trait>: Deserialize<'de>,)* {
                    type Value = Method<H>;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a method's plug-ins by kind")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Method<H>, A::Error> {
                        $(let mut $field: Option<H::Of<dyn $trait>> = None;)*
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $(stringify!($field) if $field.is_some() => return Err(A::Error::duplicate_field(stringify!($field))),
                                stringify!($field) => $field = Some(map.next_value()?),)*
                                other => return Err(A::Error::unknown_field(other, METHOD_FIELDS)),
                            }
                        }
                        Ok(Method { $($field: $field.unwrap_or_else(H::default_of::<dyn $trait>),)* })
                    }
                }
                deserializer.deserialize_struct("Method", METHOD_FIELDS, Fields(std::marker::PhantomData))
            }
        }
    }
    pub use kinds::{Method, METHOD_FIELDS, METHOD_KINDS};
    };
}

impl<H: HoldDefault> Default for Method<H> {
    fn default() -> Method<H> {
        struct Defaults;
        impl<H: HoldDefault> ForKind<H> for Defaults {
            fn make<K: ?Sized + Kind>(&mut self) -> H::Of<K> {
                H::default_of::<K>()
            }
        }
        Method::generate(&mut Defaults)
    }
}

impl Method<Shared> {
    /// The plug-ins borrowed, as the engine takes them.
    pub fn borrowed(&self) -> Method<Borrowed<'_>> {
        struct Borrow;
        impl<'a> EachKind<'a, Shared, Borrowed<'a>> for Borrow {
            type Error = std::convert::Infallible;
            fn each<K: ?Sized + Kind>(&mut self, from: &'a Arc<K>) -> Result<&'a K, Self::Error> {
                Ok(&**from)
            }
        }
        match self.try_map(&mut Borrow) {
            Ok(method) => method,
            Err(never) => match never {},
        }
    }
}

impl<'a> Method<Borrowed<'a>> {
    /// The same plug-ins for a shorter borrow (a method through a trait's projection does not
    /// shorten by itself).
    pub fn reborrow<'s>(&self) -> Method<Borrowed<'s>>
    where
        'a: 's,
    {
        struct Shorten;
        impl<'x, 'a: 's, 's> EachKind<'x, Borrowed<'a>, Borrowed<'s>> for Shorten {
            type Error = std::convert::Infallible;
            fn each<K: ?Sized + Kind>(&mut self, from: &'x &'a K) -> Result<&'s K, Self::Error> {
                Ok(*from)
            }
        }
        match self.try_map(&mut Shorten) {
            Ok(method) => method,
            Err(never) => match never {},
        }
    }

    /// The synthetic images per class that networks see: `ipc` stored images, each decoded.
    pub fn images_per_class(&self, ipc: usize) -> usize {
        ipc * self.parameterisation.images_per_stored()
    }
}
