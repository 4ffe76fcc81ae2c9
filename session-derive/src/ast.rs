//! The derive input reduced to what the expansion needs, with references to
//! the original tokens for spans.

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

use crate::attr::{ContainerAttrs, FieldAttrs};
use crate::ctxt::Ctxt;

pub(crate) struct Container<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) attrs: ContainerAttrs,
    /// Empty when the input is not a struct with named fields (already reported).
    pub(crate) fields: Vec<Field<'a>>,
    pub(crate) original: &'a DeriveInput,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    pub(crate) attrs: FieldAttrs,
}

impl Field<'_> {
    /// The name the field is stored under.
    pub(crate) fn stored_name(&self) -> String {
        self.attrs.rename.as_ref().map_or_else(
            || self.ident.to_string().trim_start_matches("r#").to_owned(),
            syn::LitStr::value,
        )
    }
}

impl<'a> Container<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let attrs = ContainerAttrs::from_ast(cx, &input.attrs);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named
                    .named
                    .iter()
                    .map(|field| Field {
                        ident: field.ident.as_ref().expect("named field"),
                        ty: &field.ty,
                        attrs: FieldAttrs::from_ast(cx, &field.attrs),
                    })
                    .collect(),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "#[derive(SessionData)] needs named fields; tuple structs are not supported",
                    );
                    Vec::new()
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "#[derive(SessionData)] needs named fields; unit structs are not supported",
                    );
                    Vec::new()
                }
            },
            Data::Enum(data) => {
                cx.syn_error(syn::Error::new(
                    data.enum_token.span(),
                    "#[derive(SessionData)] supports only structs with named fields, not enums",
                ));
                Vec::new()
            }
            Data::Union(data) => {
                cx.syn_error(syn::Error::new(
                    data.union_token.span(),
                    "#[derive(SessionData)] supports only structs with named fields, not unions",
                ));
                Vec::new()
            }
        };
        Self {
            ident: &input.ident,
            attrs,
            fields,
            original: input,
        }
    }

    /// The namespace: the attribute (required; checked in `check`), or the
    /// struct name in `snake_case` for the suggestion in that error.
    pub(crate) fn namespace(&self) -> String {
        self.attrs
            .namespace
            .as_ref()
            .map_or_else(|| snake_case(&self.ident.to_string()), syn::LitStr::value)
    }

    pub(crate) fn version(&self) -> u32 {
        self.attrs.version.as_ref().map_or(1, |(n, _)| *n)
    }

    pub(crate) fn stored_fields(&self) -> impl Iterator<Item = &Field<'a>> {
        self.fields.iter().filter(|f| f.attrs.skip.is_none())
    }
}

/// `CartV1` → `cart_v1`, `HTTPAuth` → `http_auth`, `r#Type` → `type`.
pub(crate) fn snake_case(name: &str) -> String {
    let name = name.trim_start_matches("r#");
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Cart"), "cart");
        assert_eq!(snake_case("CartV1"), "cart_v1");
        assert_eq!(snake_case("HTTPAuth"), "http_auth");
        assert_eq!(snake_case("UserProfile2Data"), "user_profile2_data");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
