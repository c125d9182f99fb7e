//! Expansion: the instrumented function.
//!
//! The signature, attributes and visibility are emitted exactly as written; only the body
//! changes. Three shapes of body, as tracing's `#[instrument]` distinguishes them:
//!
//! - `async fn`: the body runs as an inner `async` block awaited between `Call::start` and
//!   `Call::finish`, so an `async fn` stays an `async fn` (rmcp's `#[tool_router]` needs that).
//! - a function whose body ends in `Box::pin(async move { .. })` or `async { .. }` (what rmcp's
//!   `#[tool]` and async-trait generate): the same is done inside that async block, so the call
//!   is timed while the future runs, not while it is built.
//! - any other function: the body runs as a `move` closure called once, so `return` and `?`
//!   leave the closure and the result is still seen. A closure cannot carry `#[track_caller]`'s
//!   caller location, so that attribute is refused here rather than silently broken.
//!
//! A dropped guard that did not see the result reports `panic` or `cancelled` (see the runtime's
//! `Call`).

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens as _, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::visit_mut::VisitMut;
use syn::{
    Block, Expr, ExprAsync, GenericArgument, PathArguments, ReturnType, Stmt, Type, TypeParamBound,
};

use crate::parse::{Args, Format, Item};
use crate::valid::{self, Kind, Name, Plan};

pub(crate) fn instrument(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let plan = syn::parse2::<Args>(args).and_then(|args| {
        let parsed = syn::parse2::<Item>(item.clone())?;
        valid::validate(kind, args, parsed)
    });
    match plan.and_then(expand) {
        Ok(expanded) => expanded,
        // The item is emitted unchanged beside the error, so the rest of the crate still
        // type-checks and the IDE keeps seeing the function.
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item)
        }
    }
}

fn expand(plan: Plan) -> syn::Result<TokenStream> {
    let Plan {
        kind,
        name,
        session,
        user,
        fields,
        capture,
        krate,
        mut function,
    } = plan;
    let fn_name = function.sig.ident.unraw().to_string();
    let static_name = match &name {
        Name::Literal(literal) => literal.value(),
        Name::Function | Name::Computed(_) => fn_name.clone(),
    };
    let variant = kind.variant();

    let callsite = quote! {
        static __MCP_ANALYTICS_CALLSITE: #krate::__private::Callsite =
            #krate::__private::Callsite::new(
                #krate::__private::Kind::#variant,
                #static_name,
                #fn_name,
                ::core::env!("CARGO_PKG_NAME"),
                ::core::env!("CARGO_PKG_VERSION"),
            );
    };

    let mut start = quote!(#krate::__private::Call::start(&__MCP_ANALYTICS_CALLSITE));
    let name_by_request = matches!(name, Name::Function);
    for argument in request_arguments(&function.sig) {
        start = quote! {
            #start.with_request(
                (&&#krate::__private::Probe(&#argument)).__mcp_analytics_facts(),
                #name_by_request,
            )
        };
    }
    if let Name::Computed(expr) = &name {
        let name = borrowed(expr);
        start = quote!(#start.named(#name));
    }
    if let Some(expr) = &session {
        let session = borrowed(expr);
        start = quote!(#start.in_session(#session));
    }
    if let Some(expr) = &user {
        let user = borrowed(expr);
        start = quote!(#start.for_user(#user));
    }
    if !fields.is_empty() {
        let fields = fields.iter().map(|field| field_entry(&krate, field));
        start = quote!(#start.with_fields([#(#fields),*]));
    }
    if capture.arguments {
        let arguments = bindings(&function.sig).into_iter().map(|binding| {
            let name = binding.unraw().to_string();
            quote!((#name, (&&#krate::__private::Probe(&#binding)).__mcp_analytics_json()))
        });
        start = quote!(#start.with_arguments([#(#arguments),*]));
    }
    let finish = if capture.result {
        quote! {
            __mcp_analytics_call.finish_with_result(
                (&&&#krate::__private::Probe(&__mcp_analytics_output)).__mcp_analytics_observe(),
                (&&&#krate::__private::Probe(&__mcp_analytics_output)).__mcp_analytics_json(),
            );
        }
    } else {
        quote! {
            __mcp_analytics_call.finish(
                (&&&#krate::__private::Probe(&__mcp_analytics_output)).__mcp_analytics_observe(),
            );
        }
    };
    let calls = Calls {
        krate: krate.clone(),
        start: quote! {
            {
                #[allow(unused_imports)]
                use #krate::__private::{
                    ViaNoFacts as _, ViaNoJson as _, ViaRequestFacts as _, ViaSerialize as _,
                };
                #start
            }
        },
        finish: quote! {
            {
                #[allow(unused_imports)]
                use #krate::__private::{
                    ViaAnything as _, ViaCallOutcome as _, ViaNestedOutcome as _, ViaNoJson as _,
                    ViaResult as _, ViaSerialize as _, ViaSerializeOk as _,
                };
                #finish
            }
        },
    };

    let block = &mut function.block;
    let body = if function.sig.asyncness.is_some() {
        let inner = with_fake_return(block, Some(declared_output(&function.sig.output)));
        calls.around_await(quote!(async move #inner))
    } else if let Some(tail) = async_tail(block) {
        let output = future_output(&function.sig.output);
        instrument_async_block(tail, &calls, output);
        // Spliced, not nested: the user's own braces around a one-line body would trip
        // `unused_braces`.
        let statements = &block.stmts;
        quote!(#(#statements)*)
    } else {
        if let Some(track_caller) = function
            .attrs
            .iter()
            .find(|attr| attr.path().is_ident("track_caller"))
        {
            return Err(syn::Error::new_spanned(
                track_caller,
                format!(
                    "#[{}] runs a sync body in a closure, which loses `#[track_caller]`'s caller location: remove `#[track_caller]`",
                    kind.attribute()
                ),
            ));
        }
        let inner = with_fake_return(block, Some(declared_output(&function.sig.output)));
        calls.around_closure(inner)
    };

    let attrs = &function.attrs;
    let inner_attrs = &function.inner_attrs;
    let vis = &function.vis;
    let sig = &function.sig;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #callsite
            #body
        }
    })
}

/// The SDK request types a handler may take, by their type's last path segment: rmcp's
/// `RequestContext<RoleServer>`, `Peer<RoleServer>`, `Extension<http::request::Parts>` (or its
/// `Parts`), and the parameters of `read_resource`, `get_prompt` and `call_tool`. Matching by
/// name only nominates an argument; its type decides, through the runtime's probe, whether it
/// says anything, so a user type of the same name costs nothing and changes nothing.
const REQUEST_TYPES: &[&str] = &[
    "RequestContext",
    "Peer",
    "Extension",
    "Parts",
    "ReadResourceRequestParams",
    "GetPromptRequestParams",
    "CallToolRequestParams",
];

/// The names an instrumented function binds its arguments to, `self` aside: `name: T`, and the
/// one binding of a wrapper pattern (rmcp's `Parameters(args): Parameters<T>`). Names starting
/// with `_` say "unused": not captured.
fn bindings(sig: &syn::Signature) -> Vec<syn::Ident> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => binding(&typed.pat),
            syn::FnArg::Receiver(_) => None,
        })
        .filter(|binding| !binding.unraw().to_string().starts_with('_'))
        .cloned()
        .collect()
}

/// The one name a pattern binds, if it binds one that way: `name`, or `Wrapper(name)`.
fn binding(pattern: &syn::Pat) -> Option<&syn::Ident> {
    match pattern {
        syn::Pat::Ident(binding) => Some(&binding.ident),
        syn::Pat::TupleStruct(wrapper) if wrapper.elems.len() == 1 => match wrapper.elems.first() {
            Some(syn::Pat::Ident(binding)) => Some(&binding.ident),
            _ => None,
        },
        _ => None,
    }
}

/// The bindings of the arguments whose type is one of [`REQUEST_TYPES`]: `ctx` in
/// `ctx: RequestContext<RoleServer>`, `parts` in `Extension(parts): Extension<Parts>`.
fn request_arguments(sig: &syn::Signature) -> Vec<syn::Ident> {
    sig.inputs
        .iter()
        .filter_map(|input| {
            let syn::FnArg::Typed(typed) = input else {
                return None;
            };
            let Type::Path(ty) = &*typed.ty else {
                return None;
            };
            let last = ty.path.segments.last()?;
            if !REQUEST_TYPES.iter().any(|name| last.ident == name) {
                return None;
            }
            binding(&typed.pat).cloned()
        })
        .collect()
}

/// One of `fields(..)`: `(name, value)`, its value evaluated by reference (the arguments are
/// still to be used by the body). A value of a type the format cannot record is an error
/// spanned on the value.
fn field_entry(krate: &syn::Path, field: &valid::Field) -> TokenStream {
    let name = &field.name;
    let value = borrowed(&field.value);
    let span = field.value.span();
    let recorded = match field.format {
        Format::Typed => {
            quote_spanned!(span=> #krate::__private::ToFieldValue::to_field_value(#value))
        }
        Format::Display => quote_spanned!(span=> #krate::__private::FieldValue::display(#value)),
        Format::Debug => quote_spanned!(span=> #krate::__private::FieldValue::debug(#value)),
    };
    quote!((#name, #recorded))
}

/// `&(expr)`, spanned so that a type error covers the user's whole expression: the `&` takes
/// the span of its first token and the parentheses that of its last, and rustc joins them.
/// (A single span from `Spanned` would cover the first token only on stable Rust.)
fn borrowed(expr: &Expr) -> TokenStream {
    let tokens = expr.to_token_stream();
    let first = tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    let last = tokens
        .clone()
        .into_iter()
        .last()
        .map_or(first, |token| token.span());
    let mut parenthesized = Group::new(Delimiter::Parenthesis, tokens);
    parenthesized.set_span(last);
    quote_spanned!(first=> &#parenthesized)
}

/// The statements that open and close the recording around a body.
struct Calls {
    krate: syn::Path,
    start: TokenStream,
    finish: TokenStream,
}

impl Calls {
    /// The body's future is polled through `Scoped`, which marks the call as running on the
    /// thread during each poll (for the log lines of the `tracing` feature).
    fn around_await(&self, future: TokenStream) -> TokenStream {
        let Calls { start, finish, .. } = self;
        quote! {
            let __mcp_analytics_call = #start;
            let __mcp_analytics_output =
                __mcp_analytics_call.scoped(#future).await;
            #finish
            __mcp_analytics_output
        }
    }

    /// The closure goes through `call_once` so that it is an `FnOnce`: it may then return
    /// borrows of what it captured (`fn get(&mut self) -> &mut T`), which an `FnMut` may not.
    /// It runs with the call marked as running on the thread, as `around_await` does.
    fn around_closure(&self, body: TokenStream) -> TokenStream {
        let Calls {
            krate,
            start,
            finish,
        } = self;
        quote! {
            let __mcp_analytics_call = #start;
            let __mcp_analytics_output = {
                let __mcp_analytics_active = __mcp_analytics_call.activate();
                #krate::__private::call_once(move || #body)
            };
            #finish
            __mcp_analytics_output
        }
    }
}

/// Rewrites a returned `async` block so that it records the call while it runs.
fn instrument_async_block(tail: &mut ExprAsync, calls: &Calls, output: Option<Type>) {
    let capture = &tail.capture;
    let inner = with_fake_return(&tail.block, output);
    let recorded = calls.around_await(quote!(async #capture #inner));
    tail.block = syn::parse_quote!({ #recorded });
}

/// The body's final `async` block, when the body is `.. Box::pin(async { .. })` or `.. async {
/// .. }`: the shapes rmcp's `#[tool]` and async-trait produce.
fn async_tail(block: &mut Block) -> Option<&mut ExprAsync> {
    let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() else {
        return None;
    };
    match tail {
        Expr::Async(future) => Some(future),
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => {
            match call.args.first_mut() {
                Some(Expr::Async(future)) => Some(future),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else { return false };
    let mut segments = path.path.segments.iter().rev();
    matches!(
        (segments.next(), segments.next()),
        (Some(pin), Some(boxed)) if pin.ident == "pin" && boxed.ident == "Box"
    )
}

/// The declared return type, with `impl Trait` erased to `_` (a `let` cannot name it). No
/// return type declares `()`: left to inference, a body that diverges (`panic!()`) would give
/// the closure the never type, which no outcome probe accepts.
fn declared_output(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => erase_impl_trait((**ty).clone()),
    }
}

/// `T` of a return type `impl Future<Output = T>`, `Pin<Box<dyn Future<Output = T> + ..>>` and
/// the like, with `impl Trait` erased.
fn future_output(output: &ReturnType) -> Option<Type> {
    fn find(ty: &Type) -> Option<&Type> {
        let bounds = match ty {
            Type::ImplTrait(ty) => &ty.bounds,
            Type::TraitObject(ty) => &ty.bounds,
            Type::Paren(ty) => return find(&ty.elem),
            Type::Group(ty) => return find(&ty.elem),
            Type::Path(ty) => {
                let last = ty.path.segments.last()?;
                let PathArguments::AngleBracketed(args) = &last.arguments else {
                    return None;
                };
                return args.args.iter().find_map(|arg| match arg {
                    GenericArgument::Type(ty) => find(ty),
                    _ => None,
                });
            }
            _ => return None,
        };
        bounds.iter().find_map(|bound| {
            let TypeParamBound::Trait(bound) = bound else {
                return None;
            };
            let last = bound.path.segments.last()?;
            if last.ident != "Future" {
                return None;
            }
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
                _ => None,
            })
        })
    }
    match output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => find(ty).cloned().map(erase_impl_trait),
    }
}

/// Wraps `block` so its return type is inferred from the declared one before the body is
/// checked: `?` and `return` inside the closure or async block then convert exactly as they
/// would in the function, and a type error points at the declared return type.
///
/// The body's statements are spliced in rather than nested as a block: a nested `{ expr }` would
/// trip `unused_braces` on the user's own braces.
fn with_fake_return(block: &Block, output: Option<Type>) -> TokenStream {
    let Some(output) = output else {
        return block.to_token_stream();
    };
    let statements = &block.stmts;
    let span = output.span();
    let fake_return = quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __mcp_analytics_fake_return: #output = loop {};
            return __mcp_analytics_fake_return;
        }
    };
    quote!({ #fake_return #(#statements)* })
}

fn erase_impl_trait(mut ty: Type) -> Type {
    struct Eraser;
    impl VisitMut for Eraser {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(impl_trait) = ty {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](impl_trait.impl_token.span),
                });
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    Eraser.visit_type_mut(&mut ty);
    ty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_of(signature: &str) -> Option<String> {
        let sig: syn::Signature = syn::parse_str(signature).unwrap();
        future_output(&sig.output).map(|ty| ty.to_token_stream().to_string())
    }

    #[test]
    fn future_outputs_are_found_through_pins_and_boxes() {
        assert_eq!(
            output_of("fn f(&self) -> Pin<Box<dyn Future<Output = Result<u8, E>> + Send + '_>>"),
            Some("Result < u8 , E >".into())
        );
        assert_eq!(
            output_of("fn f() -> impl std::future::Future<Output = String> + Send"),
            Some("String".into())
        );
        assert_eq!(
            output_of("fn f() -> BoxFuture<'static, impl Display>"),
            None,
            "no `Future<Output = ..>` bound to read"
        );
        assert_eq!(output_of("fn f() -> u8"), None);
    }

    #[test]
    fn impl_trait_is_erased_for_let_bindings() {
        let ty: Type = syn::parse_str("Result<impl Display, Vec<impl Debug>>").unwrap();
        assert_eq!(
            erase_impl_trait(ty).to_token_stream().to_string(),
            "Result < _ , Vec < _ > >"
        );
    }

    #[test]
    fn box_pin_tails_are_recognized() {
        let mut block: Block = syn::parse_quote!({
            let x = 1;
            Box::pin(async move { x })
        });
        assert!(async_tail(&mut block).is_some());
        let mut block: Block = syn::parse_quote!({ std::boxed::Box::pin(async { 1 }) });
        assert!(async_tail(&mut block).is_some());
        let mut block: Block = syn::parse_quote!({ async move { 1 } });
        assert!(async_tail(&mut block).is_some());
        let mut block: Block = syn::parse_quote!({ Box::pin(future) });
        assert!(async_tail(&mut block).is_none());
        let mut block: Block = syn::parse_quote!({ 1 + 1 });
        assert!(async_tail(&mut block).is_none());
    }

    #[test]
    fn errors_keep_the_original_item() {
        let out = instrument(
            Kind::Tool,
            quote!(nmae = "x"),
            quote!(
                fn add(a: u8) -> u8 {
                    a
                }
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn add"), "{out}");
    }
}
