//! Code generation. Everything emitted is wrapped in `const _: () = { … };`,
//! names every item by an absolute path through the runtime's hidden
//! `__private` module (primitive types through `::core::primitive`), and uses
//! `__`-prefixed locals, so the user's crate may shadow any prelude name.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use crate::ast::{Container, Field};
use crate::check;
use crate::ctxt::Ctxt;

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let cont = Container::from_ast(&cx, input);
    check::check(&cx, &cont);
    let krate = crate_path(&cont);
    match cx.check() {
        Ok(()) => expand(&cont, &krate),
        Err(err) => {
            // The stub keeps code that names the type compiling, so the user
            // sees the attribute errors and not a second wave about a missing
            // trait impl.
            let stub = stub_impl(input, &krate);
            let errors = err.to_compile_error();
            quote! { #errors #stub }
        }
    }
}

/// A primitive type by absolute path: a user crate may declare its own
/// `u32` or `str`, which a bare name in the generated code would pick up.
fn primitive(name: &str) -> TokenStream {
    let ident = syn::Ident::new(name, Span::call_site());
    quote!(::core::primitive::#ident)
}

fn crate_path(cont: &Container<'_>) -> TokenStream {
    cont.attrs
        .krate
        .as_ref()
        .map_or_else(|| quote!(::typed_sessions), |path| quote!(#path))
}

/// An impl with the right shape and no behaviour, emitted next to the
/// errors. Generic inputs (themselves an error) get one too; every stub is
/// bounded by what the trait requires so that it adds no error of its own.
fn stub_impl(input: &DeriveInput, krate: &TokenStream) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (u8_, u32_, usize_, str_) = (
        primitive("u8"),
        primitive("u32"),
        primitive("usize"),
        primitive("str"),
    );
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned().unwrap_or_else(|| syn::WhereClause {
        where_token: syn::Token![where](Span::call_site()),
        predicates: syn::punctuated::Punctuated::new(),
    });
    if !input.generics.params.is_empty() {
        where_clause
            .predicates
            .push(syn::parse_quote!(Self: ::core::marker::Send + 'static));
    }
    // A schema is `Default` (a supertrait). On a struct that will be a
    // schema once its error is fixed, the stub does not hide a missing
    // `Default`: that is one more true error at the struct, where hiding it
    // would leave the type without an implementation, and every use of
    // `Session<T>` would fail in turn. On a type that can never be a schema
    // (an enum, a union, a generic struct) that error would be noise: a
    // bound with a dummy higher-ranked lifetime is assumed, not checked.
    let schema_shaped = input.generics.params.is_empty()
        && matches!(&input.data, syn::Data::Struct(data) if matches!(data.fields, syn::Fields::Named(_)));
    if !schema_shaped {
        where_clause
            .predicates
            .push(syn::parse_quote!(for<'__stub> Self: ::core::default::Default));
    }
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::SessionData for #ident #ty_generics #where_clause {
                const NAMESPACE: &'static #str_ = "";
                const VERSION: #u32_ = 1;
                const FIELDS: &'static [#p::FieldInfo] = &[];
                type Codec = #p::JsonCodec;
                fn encode_field(&self, __index: #usize_) -> #p::Result<#p::Vec<#u8_>, #p::CodecError> {
                    ::core::unreachable!()
                }
                fn decode_fields(__version: #u32_, __fields: &#p::FieldMap) -> #p::Result<Self, #p::DecodeError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}

fn expand(cont: &Container<'_>, krate: &TokenStream) -> TokenStream {
    let p = quote!(#krate::__private);
    let (u8_, u32_, usize_, str_) = (
        primitive("u8"),
        primitive("u32"),
        primitive("usize"),
        primitive("str"),
    );
    let ident = cont.ident;
    let namespace = cont.namespace();
    let version = cont.version();
    let codec = cont
        .attrs
        .codec
        .as_ref()
        .map_or_else(|| quote!(#p::JsonCodec), |ty| quote!(#ty));
    let stored: Vec<&Field<'_>> = cont.stored_fields().collect();

    let infos = stored.iter().map(|f| {
        let name = LitStr::new(&f.stored_name(), f.ident.span());
        let sensitive = f.attrs.sensitive.is_some();
        let rotate = f.attrs.rotate_id.is_some();
        quote!(#p::FieldInfo::__new(#name, #sensitive, #rotate))
    });

    let encode_fns = encode_fns(&p, ident, &stored);

    let (equals_stored, equals_stored_fn) = equals_stored(&p, ident, &stored);

    let field_inits = cont.fields.iter().map(|f| {
        let member = f.ident;
        let ty = f.ty;
        if f.attrs.skip.is_some() {
            let call = quote_spanned!(ty.span()=> #p::default::<#ty>);
            quote!(#member: #call(),)
        } else {
            let name = LitStr::new(&f.stored_name(), f.ident.span());
            let decoder =
                quote_spanned!(ty.span()=> <#ty as #p::StoredField>::decode_with::<__S::Codec>);
            let call = if f.attrs.default.is_some() {
                quote_spanned!(ty.span()=> #p::decode_or_default::<#ty>)
            } else {
                quote_spanned!(ty.span()=> #p::decode::<#ty>)
            };
            quote!(#member: #call(#decoder, __fields, #name)?,)
        }
    });

    let older = cont.attrs.migrate_from.as_ref().map_or_else(
        || quote!(#p::Err(#p::unsupported_version(__version))),
        |prev| quote_spanned!(prev.span()=> #p::migrate::<#prev, Self>(__version, __fields)),
    );

    let cached = cont.attrs.cached.map(|span| cached_methods(&p, span));

    let migrate_checks = cont
        .attrs
        .migrate_from
        .as_ref()
        .map(|prev| migrate_checks(&p, ident, prev, &namespace, version));

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::SessionData for #ident {
                const NAMESPACE: &'static #str_ = #namespace;
                const VERSION: #u32_ = #version;
                const FIELDS: &'static [#p::FieldInfo] = &[#(#infos),*];
                type Codec = #codec;

                fn encode_field(&self, __index: #usize_) -> #p::Result<#p::Vec<#u8_>, #p::CodecError> {
                    __encode_field::<Self>(self, __index)
                }

                fn __encode_field_into(
                    &self,
                    __index: #usize_,
                    __out: &mut #p::Vec<#u8_>,
                ) -> #p::Result<(), #p::CodecError> {
                    __encode_field_into::<Self>(self, __index, __out)
                }

                #equals_stored

                #cached

                fn decode_fields(__version: #u32_, __fields: &#p::FieldMap) -> #p::Result<Self, #p::DecodeError> {
                    if __version == #version {
                        __decode_current::<Self>(__fields)
                    } else if __version > #version {
                        #p::Err(#p::newer_version(__version, #version))
                    } else {
                        #older
                    }
                }
            }

            #encode_fns

            #[inline]
            fn __decode_current<__S: #p::SessionData>(
                __fields: &#p::FieldMap,
            ) -> #p::Result<#ident, #p::DecodeError> {
                #p::Ok(#ident { #(#field_inits)* })
            }

            #equals_stored_fn

            #migrate_checks
        };
    }
}

/// The functions behind `encode_field` and `__encode_field_into`: one
/// match arm per stored field.
fn encode_fns(p: &TokenStream, ident: &syn::Ident, stored: &[&Field<'_>]) -> TokenStream {
    let (u8_, usize_) = (primitive("u8"), primitive("usize"));
    // The field calls name the codec as `__S::Codec` of a function generic
    // over the schema, never as the concrete type: a codec type that is not a
    // `Codec` is then reported once, on `type Codec`, and not once per call.
    // Each call is spanned at the field's type and goes through
    // `<Type as StoredField>`, so a type that is not serde is reported there,
    // once per field (the encode and decode sites give the same diagnostic,
    // which rustc prints once), and a `default` field's type that is not
    // `Default` is reported there too.
    let encode_arms = stored.iter().enumerate().map(|(index, f)| {
        let member = f.ident;
        let ty = f.ty;
        let call = quote_spanned!(ty.span()=> <#ty as #p::StoredField>::encode_with::<__S::Codec>);
        quote!(#index => #call(&__value.#member),)
    });

    let encode_into_arms = stored.iter().enumerate().map(|(index, f)| {
        let member = f.ident;
        let ty = f.ty;
        let call =
            quote_spanned!(ty.span()=> <#ty as #p::StoredField>::encode_into_with::<__S::Codec>);
        quote!(#index => #call(&__value.#member, __out),)
    });

    quote! {
        #[inline]
        fn __encode_field<__S: #p::SessionData>(
            __value: &#ident,
            __index: #usize_,
        ) -> #p::Result<#p::Vec<#u8_>, #p::CodecError> {
            match __index {
                #(#encode_arms)*
                _ => #p::Err(#p::no_such_field(__index)),
            }
        }

        #[inline]
        fn __encode_field_into<__S: #p::SessionData>(
            __value: &#ident,
            __index: #usize_,
            __out: &mut #p::Vec<#u8_>,
        ) -> #p::Result<(), #p::CodecError> {
            match __index {
                #(#encode_into_arms)*
                _ => #p::Err(#p::no_such_field(__index)),
            }
        }
    }
}

/// The methods `#[session(cached)]` adds, spanned at the key, so a
/// schema that is not `Clone` or not `Sync` is reported there.
fn cached_methods(p: &TokenStream, span: Span) -> TokenStream {
    let share = quote_spanned!(span=> #p::share::<Self>);
    let clone = quote_spanned!(span=> #p::clone_shared::<Self>);
    let bool_ = primitive("bool");
    quote! {
        const __CACHED: #bool_ = true;

        fn __share(self, __fields: &#p::FieldMap) {
            #share(self, __fields)
        }

        fn __clone_shared(&self) -> #p::Option<Self> {
            #clone(self)
        }
    }
}

/// `SessionData::field_equals_stored` and its helper, for schemas with
/// fields whose encoding follows iteration order (compared by value too);
/// nothing for the others (the trait's default: bytes only).
fn equals_stored(
    p: &TokenStream,
    ident: &syn::Ident,
    stored: &[&Field<'_>],
) -> (Option<TokenStream>, Option<TokenStream>) {
    let arms: Vec<TokenStream> = stored
        .iter()
        .enumerate()
        .filter(|(_, f)| mentions_unordered(f.ty))
        .map(|(index, f)| {
            let member = f.ident;
            let ty = f.ty;
            quote!(#index => (&#p::Unordered::<__S::Codec, #ty>::new(&__value.#member)).same_as(__stored),)
        })
        .collect();
    if arms.is_empty() {
        return (None, None);
    }
    let (u8_, usize_) = (primitive("u8"), primitive("usize"));
    let method = quote! {
        const COMPARES_BY_VALUE: bool = true;

        fn field_equals_stored(&self, __index: #usize_, __stored: &[#u8_]) -> bool {
            __field_equals_stored::<Self>(self, __index, __stored)
        }
    };
    let helper = quote! {
        #[inline]
        fn __field_equals_stored<__S: #p::SessionData>(
            __value: &#ident,
            __index: #usize_,
            __stored: &[#u8_],
        ) -> bool {
            #[allow(unused_imports)]
            use #p::{UnorderedByBytes as _, UnorderedByValue as _};
            match __index {
                #(#arms)*
                _ => false,
            }
        }
    };
    (Some(method), Some(helper))
}

/// Whether a field type names a hash map or set anywhere (`HashMap`,
/// `HashSet`, also inside `Option<…>`, `Vec<…>`, …): their encoding follows
/// iteration order, which differs between equal values.
fn mentions_unordered(ty: &syn::Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "HashMap" || ident == "HashSet",
            proc_macro2::TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(quote!(#ty))
}

/// Compile-time checks of `migrate_from = Prev`: `Prev` is a schema, the
/// current type converts from it, and it has the same namespace and a lower
/// version. Every check is spanned at `Prev` so rustc points there.
fn migrate_checks(
    p: &TokenStream,
    ident: &syn::Ident,
    prev: &syn::Type,
    namespace: &str,
    version: u32,
) -> TokenStream {
    let span: Span = prev.span();
    let mut cur = ident.clone();
    cur.set_span(span);
    let ns_message = format!(
        "#[session(migrate_from)] must name a schema with the same namespace (\"{namespace}\")"
    );
    let version_message =
        format!("#[session(migrate_from)] must name a schema with a lower version than {version}");
    // The first line repeats the bounds of the `migrate` call in
    // `decode_fields`, with the same span and types (`Self` respanned as
    // `cur`), so that a `Prev` that is not a schema or has no `From` impl
    // yields one diagnostic that rustc prints once, and the lines after it,
    // in the same body, add none of their own.
    quote_spanned! {span=>
        const _: () = {
            let _ = #p::migrate::<#prev, #cur>;
            // An empty namespace is a stub after an error of its own.
            ::core::assert!(
                #p::namespace_of::<#prev>().is_empty()
                    || #p::str_eq(#p::namespace_of::<#prev>(), #namespace),
                #ns_message
            );
            ::core::assert!(#p::version_of::<#prev>() < #version, #version_message);
        };
    }
}
