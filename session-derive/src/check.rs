//! Rules that span several attributes or fields. Each `check_*` states its
//! rule; all of them run, so every violation is reported in one compile.

use syn::spanned::Spanned;

use crate::ast::Container;
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &Ctxt, cont: &Container<'_>) {
    check_generics(cx, cont);
    check_namespace(cx, cont);
    check_migrate_from_version(cx, cont);
    check_migrate_from_self(cx, cont);
    check_skip_conflicts(cx, cont);
    check_unique_stored_names(cx, cont);
}

/// A schema is one concrete type: its namespace and version are constants,
/// and two instantiations of a generic struct would silently share a
/// namespace. Generic parameters (types, lifetimes, consts) are refused.
fn check_generics(cx: &Ctxt, cont: &Container<'_>) {
    let generics = &cont.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            &generics.params,
            "#[derive(SessionData)] does not support generic structs; a schema must be a concrete type",
        );
    }
}

/// A namespace names a slot in every store: it is the storage key of the
/// schema's data, so it is spelled out (a Rust name may change; renaming
/// the type must not orphan what is stored). It is limited to characters
/// that are safe in keys, cookies and logs: ASCII letters, digits, `_`,
/// `-` and `.`, and at most 64 of them.
fn check_namespace(cx: &Ctxt, cont: &Container<'_>) {
    const RULE: &str = "1 to 64 ASCII letters, digits, '_', '-' or '.'";
    let valid = |value: &str| {
        !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if !matches!(cont.original.data, syn::Data::Struct(_)) {
        // Refused already: only structs are schemas.
        return;
    }
    match &cont.attrs.namespace {
        Some(lit) if !valid(&lit.value()) => {
            cx.error_spanned_by(lit, format!("namespace must be {RULE}"));
        }
        Some(_) => {}
        // Written but rejected: that error says enough.
        None if cont.attrs.namespace_written => {}
        None => {
            let suggested = cont.namespace();
            let suggested = if valid(&suggested) {
                suggested
            } else {
                "…".to_owned()
            };
            cx.error_spanned_by(
                cont.ident,
                format!(
                    "a session schema needs an explicit namespace: add \
                     `#[session(namespace = \"{suggested}\")]` to `{ident}`. The namespace is the \
                     key its data is stored under; naming it keeps that data when the type \
                     is renamed",
                    ident = cont.ident
                ),
            );
        }
    }
}

/// `migrate_from` names an older schema, so the current one is at least
/// version 2; when `version` itself was rejected, that error is enough.
/// (That the older one's version is lower and its namespace the same is
/// checked by the compiler on the generated code, since only the compiler
/// knows the other type's constants.)
fn check_migrate_from_version(cx: &Ctxt, cont: &Container<'_>) {
    if let Some(prev) = &cont.attrs.migrate_from {
        let version_rejected = cont.attrs.version_written && cont.attrs.version.is_none();
        if cont.version() < 2 && !version_rejected {
            cx.error_spanned_by(
                prev,
                "#[session(migrate_from)] needs #[session(version)] of at least 2 on this schema",
            );
        }
    }
}

/// `migrate_from` names the previous schema; naming this one (as `Self` or
/// by its name) would make a schema migrate from itself.
fn check_migrate_from_self(cx: &Ctxt, cont: &Container<'_>) {
    let Some(syn::Type::Path(prev)) = &cont.attrs.migrate_from else {
        return;
    };
    if prev.qself.is_none() && (prev.path.is_ident("Self") || prev.path.is_ident(cont.ident)) {
        cx.error_spanned_by(
            prev,
            "#[session(migrate_from)] must name the previous schema, not this one",
        );
    }
}

/// A skipped field is never stored, so storage options on it are mistakes.
fn check_skip_conflicts(cx: &Ctxt, cont: &Container<'_>) {
    for field in &cont.fields {
        if field.attrs.skip.is_none() {
            continue;
        }
        let conflicts = [
            ("rename", field.attrs.rename.as_ref().map(Spanned::span)),
            ("default", field.attrs.default),
            ("sensitive", field.attrs.sensitive),
            ("rotate_id", field.attrs.rotate_id),
        ];
        for (name, span) in conflicts {
            if let Some(span) = span {
                cx.syn_error(syn::Error::new(
                    span,
                    format!("#[session(skip)] cannot be combined with #[session({name})]"),
                ));
            }
        }
    }
}

/// Two stored fields may not share a stored name (after `rename`): one would
/// overwrite the other. The error lands on the second one.
fn check_unique_stored_names(cx: &Ctxt, cont: &Container<'_>) {
    let mut seen: Vec<(String, &syn::Ident)> = Vec::new();
    for field in cont.stored_fields() {
        let name = field.stored_name();
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let message = format!(
                "field is stored under the name \"{name}\", already used by field `{first}`"
            );
            match &field.attrs.rename {
                Some(lit) => cx.error_spanned_by(lit, message),
                None => cx.error_spanned_by(field.ident, message),
            }
        } else {
            seen.push((name, field.ident));
        }
    }
}
