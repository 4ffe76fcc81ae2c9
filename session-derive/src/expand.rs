//! Code generation. Everything emitted is wrapped in `const _: () = { … };`,
//! names every item by an absolute path through the runtime's hidden
//! `__private` module, and uses `__`-prefixed locals, so the user's crate may
//! shadow any prelude name.

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

fn crate_path(cont: &Container<'_>) -> TokenStream {
    match &cont.attrs.krate {
        Some(path) => quote!(#path),
        None => quote!(::typed_sessions),
    }
}

fn stub_impl(input: &DeriveInput, krate: &TokenStream) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::SessionData for #ident {
                const NAMESPACE: &'static str = "";
                const VERSION: u32 = 1;
                const FIELDS: &'static [#p::FieldInfo] = &[];
                type Codec = #p::JsonCodec;
                fn encode_field(&self, __index: usize) -> #p::Result<#p::Vec<u8>, #p::CodecError> {
                    ::core::unreachable!()
                }
                fn decode_fields(__version: u32, __fields: &#p::FieldMap) -> #p::Result<Self, #p::DecodeError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}

fn expand(cont: &Container<'_>, krate: &TokenStream) -> TokenStream {
    let p = quote!(#krate::__private);
    let ident = cont.ident;
    let namespace = cont.namespace();
    let version = cont.version();
    let codec = match &cont.attrs.codec {
        Some(ty) => quote!(#ty),
        None => quote!(#p::JsonCodec),
    };
    let stored: Vec<&Field<'_>> = cont.stored_fields().collect();

    let infos = stored.iter().map(|f| {
        let name = LitStr::new(&f.stored_name(), f.ident.span());
        let sensitive = f.attrs.sensitive.is_some();
        let rotate = f.attrs.rotate_id.is_some();
        quote!(#p::FieldInfo::__new(#name, #sensitive, #rotate))
    });

    let encode_arms = stored.iter().enumerate().map(|(index, f)| {
        let member = f.ident;
        let ty = f.ty;
        // Spanned at the field's type: a type that is not `Serialize` is
        // reported there by rustc itself.
        let call = quote_spanned!(ty.span()=> #p::encode::<Self::Codec, #ty>);
        quote!(#index => #call(&self.#member),)
    });

    let field_inits = cont.fields.iter().map(|f| {
        let member = f.ident;
        let ty = f.ty;
        if f.attrs.skip.is_some() {
            let call = quote_spanned!(ty.span()=> #p::default::<#ty>);
            quote!(#member: #call(),)
        } else {
            let name = LitStr::new(&f.stored_name(), f.ident.span());
            let call = if f.attrs.default.is_some() {
                quote_spanned!(ty.span()=> #p::decode_or_default::<Self::Codec, #ty>)
            } else {
                quote_spanned!(ty.span()=> #p::decode::<Self::Codec, #ty>)
            };
            quote!(#member: #call(__fields, #name)?,)
        }
    });

    let older = match &cont.attrs.migrate_from {
        Some(prev) => quote_spanned!(prev.span()=> #p::migrate::<#prev, Self>(__version, __fields)),
        None => quote!(#p::Err(#p::unsupported_version(__version))),
    };

    let migrate_checks = cont
        .attrs
        .migrate_from
        .as_ref()
        .map(|prev| migrate_checks(&p, ident, prev, &namespace, version));

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::SessionData for #ident {
                const NAMESPACE: &'static str = #namespace;
                const VERSION: u32 = #version;
                const FIELDS: &'static [#p::FieldInfo] = &[#(#infos),*];
                type Codec = #codec;

                fn encode_field(&self, __index: usize) -> #p::Result<#p::Vec<u8>, #p::CodecError> {
                    match __index {
                        #(#encode_arms)*
                        _ => #p::Err(#p::no_such_field(__index)),
                    }
                }

                fn decode_fields(__version: u32, __fields: &#p::FieldMap) -> #p::Result<Self, #p::DecodeError> {
                    if __version == #version {
                        #p::Ok(Self { #(#field_inits)* })
                    } else if __version > #version {
                        #p::Err(#p::newer_version(__version, #version))
                    } else {
                        #older
                    }
                }
            }
            #migrate_checks
        };
    }
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
    let ns_message = format!(
        "#[session(migrate_from)] must name a schema with the same namespace (\"{namespace}\")"
    );
    let version_message =
        format!("#[session(migrate_from)] must name a schema with a lower version than {version}");
    quote_spanned! {span=>
        #[allow(dead_code)]
        fn __assert_migrates() {
            #p::assert_migrates::<#prev, #ident>();
        }
        const _: () = ::core::assert!(
            #p::str_eq(#p::namespace_of::<#prev>(), #namespace),
            #ns_message
        );
        const _: () = ::core::assert!(#p::version_of::<#prev>() < #version, #version_message);
    }
}
