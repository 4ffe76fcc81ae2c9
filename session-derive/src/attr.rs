//! Parsing of `#[session(...)]` attributes into plain values. Every problem
//! is recorded in the [`Ctxt`] and parsing goes on, so one compile reports
//! all of them.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Token};

use crate::ctxt::Ctxt;

/// One attribute value that may be given at most once.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: &'static str,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    fn none(cx: &'c Ctxt, name: &'static str) -> Self {
        Self {
            cx,
            name,
            value: None,
        }
    }

    /// Sets the value; a second occurrence is an error on its key.
    fn set<K: ToTokens>(&mut self, key: K, value: T) {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                key,
                format!("duplicate #[session({})] attribute", self.name),
            );
        } else {
            self.value = Some(value);
        }
    }

    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}

/// `#[session(...)]` on the struct.
pub(crate) struct ContainerAttrs {
    pub(crate) namespace: Option<LitStr>,
    /// `namespace` was written (even if its value was rejected), or a
    /// `#[session]` attribute failed to parse: the missing-namespace error
    /// then stays quiet instead of piling on.
    pub(crate) namespace_written: bool,
    pub(crate) version: Option<(u32, LitInt)>,
    /// `version` was written, even if its value was rejected: rules that
    /// depend on the version then stay quiet instead of piling on.
    pub(crate) version_written: bool,
    pub(crate) migrate_from: Option<syn::Type>,
    pub(crate) codec: Option<syn::Type>,
    pub(crate) krate: Option<syn::Path>,
    /// `cached`: a store that keeps records in memory may hand one decoded
    /// copy to every read-only request (the schema must be `Clone + Sync`).
    pub(crate) cached: Option<Span>,
}

/// `#[session(...)]` on a field. Flags keep the span of their key.
pub(crate) struct FieldAttrs {
    pub(crate) rename: Option<LitStr>,
    pub(crate) default: Option<Span>,
    pub(crate) skip: Option<Span>,
    pub(crate) sensitive: Option<Span>,
    pub(crate) rotate_id: Option<Span>,
}

const CONTAINER_KEYS: &[&str] = &[
    "namespace",
    "version",
    "migrate_from",
    "codec",
    "crate",
    "cached",
];
const FIELD_KEYS: &[&str] = &["rename", "default", "skip", "sensitive", "rotate_id"];

/// Where a `#[session(...)]` attribute sits.
#[derive(Clone, Copy)]
enum Place {
    Container,
    Field,
}

impl Place {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Container => CONTAINER_KEYS,
            Self::Field => FIELD_KEYS,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Container => Self::Field,
            Self::Field => Self::Container,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Field => "field",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Self::Container => "the struct",
            Self::Field => "a field",
        }
    }
}

impl ContainerAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut namespace = Attr::none(cx, "namespace");
        let mut version = Attr::none(cx, "version");
        let mut migrate_from = Attr::none(cx, "migrate_from");
        let mut codec = Attr::none(cx, "codec");
        let mut krate = Attr::none(cx, "crate");
        let mut cached = Attr::none(cx, "cached");
        let mut version_written = false;
        let mut namespace_written = false;

        for attr in attrs.iter().filter(|a| a.path().is_ident("session")) {
            let result = attr.parse_nested_meta(|meta| {
                let key = meta.path.clone();
                if key.is_ident("namespace") {
                    namespace_written = true;
                    if let Some(lit) = parse_str(cx, &meta, "namespace = \"…\"")? {
                        namespace.set(&key, lit);
                    }
                } else if key.is_ident("version") {
                    version_written = true;
                    if let Some(lit) = parse_int(cx, &meta, "version = 2")? {
                        match lit.base10_parse::<u32>() {
                            Ok(0) => cx.error_spanned_by(&lit, "version must be at least 1"),
                            Ok(n) => version.set(&key, (n, lit)),
                            Err(_) => cx.error_spanned_by(
                                &lit,
                                "version must be an integer from 1 to 4294967295",
                            ),
                        }
                    }
                } else if key.is_ident("migrate_from") {
                    if let Some(ty) = parse_type(cx, &meta, "migrate_from = PreviousSchema")? {
                        migrate_from.set(&key, ty);
                    }
                } else if key.is_ident("codec") {
                    if let Some(ty) = parse_type(cx, &meta, "codec = MyCodec")? {
                        codec.set(&key, ty);
                    }
                } else if key.is_ident("cached") {
                    if no_value(cx, &meta, "cached")? {
                        cached.set(&key, key.span());
                    }
                } else if key.is_ident("crate") {
                    if let Some(lit) = parse_str(cx, &meta, "crate = \"path::to::typed_sessions\"")? {
                        match lit.parse::<syn::Path>() {
                            Ok(path) => krate.set(&key, path),
                            Err(_) => cx.error_spanned_by(
                                &lit,
                                "#[session(crate = \"…\")] must be a path, like \"::typed_sessions\"",
                            ),
                        }
                    }
                } else {
                    unknown_key(cx, &meta, Place::Container)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                namespace_written = true;
                cx.syn_error(err);
            }
        }

        Self {
            namespace: namespace.get(),
            namespace_written,
            version: version.get(),
            version_written,
            migrate_from: migrate_from.get(),
            codec: codec.get(),
            krate: krate.get(),
            cached: cached.get(),
        }
    }
}

impl FieldAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, attrs: &[syn::Attribute]) -> Self {
        let mut rename = Attr::none(cx, "rename");
        let mut default = Attr::none(cx, "default");
        let mut skip = Attr::none(cx, "skip");
        let mut sensitive = Attr::none(cx, "sensitive");
        let mut rotate_id = Attr::none(cx, "rotate_id");

        for attr in attrs.iter().filter(|a| a.path().is_ident("session")) {
            let result = attr.parse_nested_meta(|meta| {
                let key = meta.path.clone();
                let flag = |slot: &mut Attr<'_, Span>, meta: &ParseNestedMeta<'_>| {
                    if no_value(cx, meta, slot.name)? {
                        slot.set(&key, key.span());
                    }
                    syn::Result::Ok(())
                };
                if key.is_ident("rename") {
                    if let Some(lit) = parse_str(cx, &meta, "rename = \"…\"")? {
                        if lit.value().is_empty() {
                            cx.error_spanned_by(&lit, "#[session(rename)] must not be empty");
                        } else {
                            rename.set(&key, lit);
                        }
                    }
                } else if key.is_ident("default") {
                    flag(&mut default, &meta)?;
                } else if key.is_ident("skip") {
                    flag(&mut skip, &meta)?;
                } else if key.is_ident("sensitive") {
                    flag(&mut sensitive, &meta)?;
                } else if key.is_ident("rotate_id") {
                    flag(&mut rotate_id, &meta)?;
                } else {
                    unknown_key(cx, &meta, Place::Field)?;
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }

        Self {
            rename: rename.get(),
            default: default.get(),
            skip: skip.get(),
            sensitive: sensitive.get(),
            rotate_id: rotate_id.get(),
        }
    }
}

/// Reports an unknown key on the key itself, then consumes whatever value it
/// carries so that the keys after it are still checked. A key that belongs
/// on the other place (`skip` on the struct, `version` on a field) says so.
fn unknown_key(cx: &Ctxt, meta: &ParseNestedMeta<'_>, place: Place) -> syn::Result<()> {
    let name = meta.path.to_token_stream().to_string().replace(' ', "");
    let other = place.other();
    let message = if other.keys().contains(&name.as_str()) {
        format!(
            "#[session({name})] is a {} attribute and belongs on {}, not on {}",
            other.name(),
            other.target(),
            place.target(),
        )
    } else {
        let expected: Vec<String> = place.keys().iter().map(|k| format!("`{k}`")).collect();
        format!(
            "unknown #[session] {} attribute `{name}`, expected one of {}",
            place.name(),
            expected.join(", "),
        )
    };
    cx.error_spanned_by(&meta.path, message);
    skip_value(meta)
}

fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// A flag such as `default`: a value is an error on the value (`= true` or
/// `(…)`), and the flag is then ignored.
fn no_value(cx: &Ctxt, meta: &ParseNestedMeta<'_>, name: &str) -> syn::Result<bool> {
    let message = format!("#[session({name})] takes no value");
    if meta.input.peek(Token![=]) {
        let value: Expr = meta.value()?.parse()?;
        cx.error_spanned_by(&value, message);
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
        cx.syn_error(syn::Error::new(paren.span.join(), message));
    } else {
        return Ok(true);
    }
    Ok(false)
}

fn parse_expr(cx: &Ctxt, meta: &ParseNestedMeta<'_>, form: &str) -> syn::Result<Option<Expr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, format!("expected #[session({form})]"));
        skip_value(meta)?;
        return Ok(None);
    }
    Ok(Some(meta.value()?.parse::<Expr>()?))
}

fn parse_str(cx: &Ctxt, meta: &ParseNestedMeta<'_>, form: &str) -> syn::Result<Option<LitStr>> {
    Ok(match parse_expr(cx, meta, form)? {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        })) => Some(lit),
        Some(other) => {
            cx.error_spanned_by(
                &other,
                format!("expected a string literal: #[session({form})]"),
            );
            None
        }
        None => None,
    })
}

fn parse_int(cx: &Ctxt, meta: &ParseNestedMeta<'_>, form: &str) -> syn::Result<Option<LitInt>> {
    Ok(match parse_expr(cx, meta, form)? {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        })) => Some(lit),
        Some(other) => {
            cx.error_spanned_by(
                &other,
                format!("expected an integer literal: #[session({form})]"),
            );
            None
        }
        None => None,
    })
}

fn parse_type(cx: &Ctxt, meta: &ParseNestedMeta<'_>, form: &str) -> syn::Result<Option<syn::Type>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&meta.path, format!("expected #[session({form})]"));
        skip_value(meta)?;
        return Ok(None);
    }
    let input = meta.value()?;
    if input.peek(Lit) {
        let lit: Lit = input.parse()?;
        cx.error_spanned_by(&lit, format!("expected a type: #[session({form})]"));
        return Ok(None);
    }
    Ok(Some(input.parse::<syn::Type>()?))
}
