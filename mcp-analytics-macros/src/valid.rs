//! Validation: from what was written to a checked plan. Every problem is reported, each spanned
//! on the token to change, with what to write instead.

use proc_macro2::Span;
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

use crate::parse::{Arg, Args, FieldList, Format, Function, Item};

/// Most fields one attribute may give: the runtime's `MAX_FIELDS`, so that a call's own fields
/// are never the ones cut.
const MAX_FIELDS: usize = 32;

/// Which attribute is expanding.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Tool,
    Resource,
    Prompt,
}

impl Kind {
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Tool => "mcp_tool",
            Kind::Resource => "mcp_resource",
            Kind::Prompt => "mcp_prompt",
        }
    }

    /// The runtime's `__private::Kind` variant.
    pub(crate) fn variant(self) -> Ident {
        let name = match self {
            Kind::Tool => "Tool",
            Kind::Resource => "Resource",
            Kind::Prompt => "Prompt",
        };
        Ident::new(name, Span::call_site())
    }
}

/// What the event is named.
pub(crate) enum Name {
    /// The function's own name.
    Function,
    /// `name = "literal"`.
    Literal(LitStr),
    /// `name = <expr>`, evaluated on each call.
    Computed(Expr),
}

/// What `capture(..)` asks for.
#[derive(Default, Clone, Copy)]
pub(crate) struct Capture {
    /// `arguments`: each argument whose type is `Serialize`, by name.
    pub(crate) arguments: bool,
    /// `result`: the returned value (a `Result`'s `Ok` value), when it is `Serialize`.
    pub(crate) result: bool,
}

/// One of `fields(..)`, checked.
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) format: Format,
    pub(crate) value: Expr,
}

/// Everything `expand` needs, checked.
pub(crate) struct Plan {
    pub(crate) kind: Kind,
    pub(crate) name: Name,
    pub(crate) session: Option<Expr>,
    pub(crate) user: Option<Expr>,
    pub(crate) fields: Vec<Field>,
    pub(crate) capture: Capture,
    /// Where the runtime crate is: `::mcp_analytics` unless `crate = path` says otherwise.
    pub(crate) krate: Path,
    pub(crate) function: Function,
}

/// Collects errors so that one compilation reports them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }
}

pub(crate) fn validate(kind: Kind, args: Args, item: Item) -> syn::Result<Plan> {
    let attribute = kind.attribute();
    let mut errors = Errors::default();
    let mut name = Name::Function;
    let mut session = None;
    let mut user = None;
    let mut fields = Vec::new();
    let mut capture = Capture::default();
    let mut krate = None;
    let mut seen: Vec<String> = Vec::new();

    for arg in args.0 {
        let (key, value) = match arg {
            Arg::Pair { key, value } => (key, value),
            Arg::List {
                key,
                paren,
                content,
            } => {
                let key_text = key.to_string();
                if key_text != "fields" && key_text != "capture" {
                    errors.push(paren.span.join(), takes_no_list(attribute, &key_text));
                } else if seen.contains(&key_text) {
                    errors.push(
                        key.span(),
                        format!(
                            "duplicate argument `{key_text}`: give it once, with everything in it"
                        ),
                    );
                } else if key_text == "fields" {
                    seen.push(key_text);
                    match syn::parse2::<FieldList>(content) {
                        Ok(list) => fields = validate_fields(list, &mut errors),
                        Err(error) => errors.push(error.span(), error),
                    }
                } else {
                    seen.push(key_text);
                    match Punctuated::<Ident, Token![,]>::parse_terminated.parse2(content) {
                        Ok(list) => capture = validate_capture(list, &mut errors),
                        Err(error) => errors.push(error.span(), error),
                    }
                }
                continue;
            }
            Arg::Bare { key } => {
                let hint = match key.to_string().as_str() {
                    "name" => {
                        format!("`name` takes a value: write `#[{attribute}(name = \"...\")]`")
                    }
                    "session" => {
                        "`session` takes a value: write `session = <expression>`".to_owned()
                    }
                    "crate" => {
                        "`crate` takes a value: write `crate = path::to::mcp_analytics`".to_owned()
                    }
                    "user" => "`user` takes a value: write `user = <expression>`, e.g. `user = claims.sub`".to_owned(),
                    "fields" => "`fields` takes a list: write `fields(region = args.region)`".to_owned(),
                    "capture" => "`capture` takes a list: write `capture(arguments, result)`".to_owned(),
                    other => unknown_argument(other),
                };
                errors.push(key.span(), hint);
                continue;
            }
            Arg::Positional(value) => {
                let hint = match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => format!(
                        "name the argument: write `#[{attribute}(name = {})]`",
                        quote::quote!(#lit)
                    ),
                    _ => format!(
                        "expected `name = ...`, `session = ...`, `user = ...`, `fields(...)` or `crate = ...`, as in `#[{attribute}(name = \"add\")]`"
                    ),
                };
                errors.push(value.span(), hint);
                continue;
            }
        };

        let key_text = key.to_string();
        if seen.contains(&key_text) {
            errors.push(
                key.span(),
                format!("duplicate argument `{key_text}`: give it once"),
            );
            continue;
        }
        seen.push(key_text.clone());

        match key_text.as_str() {
            "name" => match value {
                Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => {
                    if lit.value().is_empty() {
                        errors.push(
                            lit.span(),
                            "the name must not be empty: remove `name` to use the function's name",
                        );
                    } else {
                        name = Name::Literal(lit);
                    }
                }
                Expr::Lit(ExprLit { lit, .. }) => errors.push(
                    lit.span(),
                    format!(
                        "`name` takes a string, not {} literal: write `name = \"{}\"`",
                        describe_literal(&lit),
                        quote::quote!(#lit).to_string().trim_matches(['\'', '"'])
                    ),
                ),
                computed => name = Name::Computed(computed),
            },
            "session" => match value {
                Expr::Lit(ExprLit { lit, .. }) if !matches!(lit, Lit::Str(_)) => errors.push(
                    lit.span(),
                    format!(
                        "`session` takes an expression that yields the session id, not {} literal: write `session = <expression>`, e.g. `session = session_id`",
                        describe_literal(&lit)
                    ),
                ),
                value => session = Some(value),
            },
            "user" => match value {
                Expr::Lit(ExprLit { lit, .. }) => errors.push(
                    lit.span(),
                    format!(
                        "`user` takes an expression that yields the user's id, not {} literal: write `user = <expression>`, e.g. `user = claims.sub`",
                        describe_literal(&lit)
                    ),
                ),
                value => user = Some(value),
            },
            "fields" => errors.push(
                key.span(),
                "`fields` takes a list, not a value: write `fields(region = args.region, plan = %user.plan)`",
            ),
            "capture" => errors.push(
                key.span(),
                "`capture` takes a list, not a value: write `capture(arguments, result)`",
            ),
            "crate" => match crate_path(value) {
                Ok(path) => krate = Some(path),
                Err(span) => errors.push(
                    span,
                    "`crate` takes a path: write `crate = path::to::mcp_analytics`",
                ),
            },
            other => errors.push(key.span(), unknown_argument(other)),
        }
    }

    let function = match item {
        Item::Fn(function) => Some(function),
        Item::Declaration { semi, .. } => {
            errors.push(
                semi.span,
                format!(
                    "#[{attribute}] needs the function's body: put it on the method in the `impl` block, not on the trait's declaration"
                ),
            );
            None
        }
        Item::Other { what, span } => {
            errors.push(
                span,
                format!(
                    "#[{attribute}] instruments functions and methods, not {what}: put it on each handler function"
                ),
            );
            None
        }
    };
    if let Some(function) = &function {
        if let Some(constness) = &function.sig.constness {
            errors.push(
                constness.span,
                format!("#[{attribute}] cannot instrument a `const fn` (it reads the clock): remove `const`"),
            );
        }
        if let syn::ReturnType::Type(_, ty) = &function.sig.output
            && let syn::Type::Never(never) = &**ty
        {
            errors.push(
                never.bang_token.span,
                format!("#[{attribute}] records calls that return, and a function returning `!` never does: remove the attribute"),
            );
        }
    }

    if let (Name::Function, Some(function)) = (&name, &function)
        && let Some(sdk_name) = sdk_name(&function.attrs)
    {
        name = Name::Literal(sdk_name);
    }

    match (errors.0, function) {
        (Some(errors), _) => Err(errors),
        (None, Some(function)) => Ok(Plan {
            kind,
            name,
            session,
            user,
            fields,
            capture,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::mcp_analytics)),
            function: *function,
        }),
        (None, None) => unreachable!("a missing function always records an error"),
    }
}

/// The name given to rmcp's `#[tool(name = "..")]` or `#[prompt(name = "..")]`, when ours is
/// placed above it and so still sees it: the event then carries the name clients call. (Below
/// it, rmcp has already consumed the attribute; `name = ".."` on ours says the same.)
fn sdk_name(attrs: &[syn::Attribute]) -> Option<LitStr> {
    attrs.iter().find_map(|attr| {
        let last = attr.path().segments.last()?;
        if last.ident != "tool" && last.ident != "prompt" {
            return None;
        }
        let syn::Meta::List(list) = &attr.meta else {
            return None;
        };
        // Top-level `name = "literal"` only; rmcp's other arguments are not ours to parse.
        let tokens: Vec<proc_macro2::TokenTree> = list.tokens.clone().into_iter().collect();
        tokens.windows(3).find_map(|window| match window {
            [
                proc_macro2::TokenTree::Ident(key),
                proc_macro2::TokenTree::Punct(eq),
                proc_macro2::TokenTree::Literal(value),
            ] if key == "name" && eq.as_char() == '=' => {
                syn::parse2::<LitStr>(proc_macro2::TokenTree::Literal(value.clone()).into()).ok()
            }
            _ => None,
        })
    })
}

/// Checks `fields(..)`: each with a value, each name once, [`MAX_FIELDS`] at most.
fn validate_fields(list: FieldList, errors: &mut Errors) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    for field in list.0 {
        let name = field.key.text();
        let span = field.key.span();
        let Some((format, value)) = field.value else {
            errors.push(
                span,
                format!("a field takes a value: write `{name} = <expression>`, `{name} = %value` (its `Display`) or `{name} = ?value` (its `Debug`)"),
            );
            continue;
        };
        if name.is_empty() {
            errors.push(span, "a field's name must not be empty");
        } else if fields.iter().any(|known| known.name == name) {
            errors.push(span, format!("duplicate field `{name}`: give it once"));
        } else if fields.len() == MAX_FIELDS {
            errors.push(
                span,
                format!("a call records at most {MAX_FIELDS} fields: this is one too many"),
            );
        } else {
            fields.push(Field {
                name,
                format,
                value,
            });
        }
    }
    fields
}

/// Checks `capture(..)`: `arguments`, `result`, each once.
fn validate_capture(list: Punctuated<Ident, Token![,]>, errors: &mut Errors) -> Capture {
    let mut capture = Capture::default();
    for what in list {
        let slot = match what.to_string().as_str() {
            "arguments" => &mut capture.arguments,
            "result" => &mut capture.result,
            other => {
                errors.push(
                    what.span(),
                    format!("`capture` takes `arguments` and `result`, not `{other}`: write `capture(arguments, result)`"),
                );
                continue;
            }
        };
        if *slot {
            errors.push(
                what.span(),
                format!("`{what}` is already captured: give it once"),
            );
        }
        *slot = true;
    }
    capture
}

fn takes_no_list(attribute: &str, key: &str) -> String {
    match key {
        "name" | "session" | "user" | "crate" => {
            format!("`{key}` takes a value, not a list: write `#[{attribute}({key} = ...)]`")
        }
        other => unknown_argument(other),
    }
}

fn unknown_argument(key: &str) -> String {
    format!(
        "unknown argument `{key}`: expected `name`, `session`, `user`, `fields`, `capture` or `crate`"
    )
}

fn describe_literal(lit: &Lit) -> &'static str {
    match lit {
        Lit::Str(_) => "a string",
        Lit::ByteStr(_) | Lit::CStr(_) => "a byte string",
        Lit::Byte(_) => "a byte",
        Lit::Char(_) => "a character",
        Lit::Int(_) => "an integer",
        Lit::Float(_) => "a float",
        Lit::Bool(_) => "a boolean",
        _ => "this",
    }
}

/// `crate = path` or, as serde and tokio write it, `crate = "path"`.
fn crate_path(value: Expr) -> Result<Path, Span> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit.parse().map_err(|_| lit.span()),
        other => Err(other.span()),
    }
}
