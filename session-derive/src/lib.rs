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

/// Derives `SessionData` for a struct with named fields: the struct becomes
/// one namespace of the session, stored field by field.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use typed_sessions::SessionData;
///
/// #[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
/// struct Item { sku: String, qty: u32 }
///
/// #[derive(SessionData, Default)]
/// #[session(namespace = "cart", version = 1)]
/// struct CartV1 { skus: Vec<String> }
///
/// #[derive(SessionData, Default)]
/// #[session(namespace = "cart", version = 2, migrate_from = CartV1)]
/// struct Cart {
///     #[session(rename = "lines")]
///     items: Vec<Item>,
///     #[session(default)]
///     coupon: Option<String>,
///     #[session(skip)]
///     cached_total: Option<u64>,
///     #[session(sensitive)]
///     payment_token: Option<String>,
/// }
///
/// impl From<CartV1> for Cart {
///     fn from(v1: CartV1) -> Self {
///         let items = v1.skus.into_iter().map(|sku| Item { sku, qty: 1 }).collect();
///         Self { items, ..Self::default() }
///     }
/// }
///
/// assert_eq!(Cart::NAMESPACE, "cart");
/// assert_eq!(Cart::VERSION, 2);
/// ```
///
/// # Container attributes, `#[session(…)]` on the struct
///
/// - `namespace = "…"` (**required**): the key the schema's data is stored
///   under, 1 to 64 ASCII letters, digits, `_`, `-` or `.`. It is not a
///   Rust name: renaming the type keeps the data as long as the namespace
///   stays. Two schemas of one namespace in one request are refused.
/// - `version = N` (default 1): stored with the data. Bump it when a field
///   changes type or meaning.
/// - `migrate_from = Type`: the previous version's schema (same namespace,
///   lower version), converted with `From<Type>`; data stored at any older
///   version in the chain is migrated when read, and rewritten at the new
///   version only when the request writes. Data of a newer version than
///   the code is never overwritten (see `NewerVersionPolicy`).
/// - `codec = Type`: a `Codec` for the field bytes (default `JsonCodec`).
/// - `crate = "path"`: where `typed_sessions` is, when it is re-exported
///   under another name.
/// - `cached`: a store that keeps records in memory (`MemoryStore`, the
///   values a `CookieStore` remembers, a custom store that hands out clones
///   of the records it keeps) keeps one decoded copy of the namespace next
///   to its stored bytes, made by the first request that reads it without
///   borrowing it mutably, and later read-only requests share it instead
///   of decoding the fields again. A request that borrows the value
///   mutably (or through `update`) gets its own copy (`Clone`) and never
///   publishes it; any write to the namespace drops the shared copy. The
///   schema must be `Clone` and `Sync`, must not change through `&self`
///   (no `Arc<Mutex<…>>` or atomic fields: such a change would reach every
///   request sharing the copy), and its fields' `Deserialize` must not
///   have side effects or depend on the time (it runs once, not per
///   request). It costs one decoded value per stored session that was
///   read; Redis and SQL stores decode every request as before.
///
/// # Field attributes, `#[session(…)]` on a field
///
/// - `rename = "…"`: the name the field is stored under (keeps stored data
///   when the Rust field is renamed).
/// - `default`: a field absent from storage reads as `Default::default()`
///   (otherwise the namespace fails to decode and the decode policy
///   applies); mark every field added to an existing schema.
/// - `skip`: never stored; `Default` on load.
/// - `sensitive`: never logged; `<redacted>` in the `Debug` of `Session<T>`
///   and `SessionRef<T>`. (A signed `CookieStore` still shows it to
///   whoever holds the cookie: use the private mode.)
/// - `rotate_id`: a change of this field gives the session a new id in the
///   same write (mark the logged-in user with it, against fixation).
///
/// # Requirements
///
/// The struct has named fields and no generic parameters and is `Default`
/// (what an absent namespace reads as; a missing `Default` is one error at
/// the struct); every stored field is `Serialize + Deserialize` (one error
/// per field that is not, at its type) and `Send`. Each mistake is a
/// compile error at the offending token, all reported in one compile.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
