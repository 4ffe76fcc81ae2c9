//! `#[derive(SessionData)]`: turns a struct with named fields into a typed,
//! versioned session schema. Use it through the `typed-sessions` crate,
//! which documents every attribute.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `SessionData` for a struct with named fields.
///
/// Container attributes: `#[session(namespace = "…", version = N,
/// migrate_from = Type, codec = Type, crate = "path")]`; `namespace` is
/// required (it is the storage key, so renaming the type keeps the data). Field attributes:
/// `#[session(rename = "…", default, skip, sensitive, rotate_id)]`.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
