//! Parsing: the attribute's arguments and the item it is on, as written. No judgement here
//! beyond syntax; `valid` decides what is acceptable.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Block, Expr, Ident, LitStr, Signature, Token, Visibility, token};

/// The attribute's arguments: `key = value`, `key(..)`, a bare `key`, or a stray value.
pub(crate) struct Args(pub(crate) Punctuated<Arg, Token![,]>);

pub(crate) enum Arg {
    /// `name = <expr>`, `session = <expr>`, `user = <expr>`, `crate = path`, or an unknown key.
    Pair { key: Ident, value: Expr },
    /// A key with a parenthesized list: `fields(..)`. The list is parsed by the key's own
    /// syntax ([`FieldList`]) once the key is known.
    List {
        key: Ident,
        paren: token::Paren,
        content: TokenStream,
    },
    /// A key without a value: `name`.
    Bare { key: Ident },
    /// A value without a key: `"add"`.
    Positional(Expr),
}

/// `fields(..)`'s list, as tracing's `#[instrument(fields(..))]` writes it.
pub(crate) struct FieldList(pub(crate) Punctuated<FieldArg, Token![,]>);

/// One field: `key = value`, `key = %value` (its `Display`), `key = ?value` (its `Debug`); or
/// a key alone, which `valid` refuses with a hint.
pub(crate) struct FieldArg {
    pub(crate) key: FieldKey,
    pub(crate) value: Option<(Format, Expr)>,
}

/// A field's name: `region`, `user.plan` (tracing's dotted names), or `"plan-tier"`.
pub(crate) enum FieldKey {
    Path(Punctuated<Ident, Token![.]>),
    Literal(LitStr),
}

/// How a field's value is recorded.
pub(crate) enum Format {
    /// As it is: a number, a bool or text (the `ToFieldValue` trait).
    Typed,
    /// `%value`: its `Display` text.
    Display,
    /// `?value`: its `Debug` text.
    Debug,
}

impl Parse for FieldList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Punctuated::parse_terminated(input).map(FieldList)
    }
}

impl Parse for FieldArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = if input.peek(LitStr) {
            FieldKey::Literal(input.parse()?)
        } else {
            FieldKey::Path(Punctuated::parse_separated_nonempty_with(
                input,
                Ident::parse_any,
            )?)
        };
        if !input.peek(Token![=]) {
            return Ok(FieldArg { key, value: None });
        }
        input.parse::<Token![=]>()?;
        let format = if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            Format::Display
        } else if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            Format::Debug
        } else {
            Format::Typed
        };
        let value = input.parse()?;
        Ok(FieldArg {
            key,
            value: Some((format, value)),
        })
    }
}

impl FieldKey {
    /// The name as the row writes it: a dotted path joined with `.`.
    pub(crate) fn text(&self) -> String {
        match self {
            FieldKey::Path(path) => path
                .iter()
                .map(|ident| ident.unraw().to_string())
                .collect::<Vec<_>>()
                .join("."),
            FieldKey::Literal(lit) => lit.value(),
        }
    }

    pub(crate) fn span(&self) -> Span {
        match self {
            FieldKey::Path(path) => path.first().map_or_else(Span::call_site, Ident::span),
            FieldKey::Literal(lit) => lit.span(),
        }
    }
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Punctuated::parse_terminated(input).map(Args)
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `Ident::parse_any` also takes keywords, so `crate = ...` reads as a key.
        if input.peek(Ident::peek_any) && !input.peek2(Token![::]) {
            let key = Ident::parse_any(input)?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                let value = input.parse()?;
                return Ok(Arg::Pair { key, value });
            }
            if input.peek(token::Paren) {
                let content;
                let paren = syn::parenthesized!(content in input);
                let content = content.parse()?;
                return Ok(Arg::List {
                    key,
                    paren,
                    content,
                });
            }
            if input.is_empty() || input.peek(Token![,]) {
                return Ok(Arg::Bare { key });
            }
            return Err(input.error(format!("expected `=` after `{key}`: write `{key} = ...`")));
        }
        input.parse().map(Arg::Positional)
    }
}

/// The item under the attribute. Only functions are accepted; anything else is kept as tokens
/// so the error can point at it and the item can be emitted unchanged.
pub(crate) enum Item {
    Fn(Box<Function>),
    /// A function without a body: a trait method's declaration.
    Declaration {
        semi: Token![;],
    },
    /// Not a function: `what` names it, `span` is its keyword.
    Other {
        what: &'static str,
        span: Span,
    },
}

pub(crate) struct Function {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// `#![...]` at the top of the body: they apply to the whole body, ours included.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) block: Block,
}

impl Parse for Item {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let fork = input.fork();
        if fork.parse::<Signature>().is_ok() {
            let sig: Signature = input.parse()?;
            if input.peek(Token![;]) {
                let semi = input.parse()?;
                return Ok(Item::Declaration { semi });
            }
            let content;
            let brace_token = syn::braced!(content in input);
            let inner_attrs = content.call(Attribute::parse_inner)?;
            let stmts = content.call(Block::parse_within)?;
            return Ok(Item::Fn(Box::new(Function {
                attrs,
                vis,
                sig,
                inner_attrs,
                block: Block { brace_token, stmts },
            })));
        }
        let (what, span) = describe(input);
        // The rest is not ours to parse: it is emitted as it was.
        input.parse::<TokenStream>()?;
        Ok(Item::Other { what, span })
    }
}

/// Names a non-function item by its leading keyword, for the error message.
fn describe(input: ParseStream<'_>) -> (&'static str, Span) {
    let span = input.span();
    let keyword = input.fork().call(Ident::parse_any).ok();
    let what = match keyword.as_ref().map(|k| (k.to_string(), k.span())) {
        Some((k, _)) => match k.as_str() {
            "struct" => "a struct",
            "enum" => "an enum",
            "union" => "a union",
            "impl" => "an impl block",
            "trait" => "a trait",
            "mod" => "a module",
            "const" => "a constant",
            "static" => "a static",
            "type" => "a type alias",
            "use" => "a use declaration",
            "extern" => "an extern block or crate",
            "macro_rules" => "a macro",
            _ => "this item",
        },
        None => "this item",
    };
    (what, keyword.map_or(span, |k| k.span()))
}
