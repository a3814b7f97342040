//! `import "name" as m;`: module scripts of the same app, fetched through
//! [`Host::module_source`].
//!
//! Rules (SPEC §5): names match `^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`; the names of the
//! built-in modules are reserved; a module may hold only functions, constants and
//! imports; imports nest at most [`MAX_IMPORT_DEPTH`] deep; a cycle is an error naming
//! it (`import cycle: a -> b -> a`). Every `import` statement fetches and evaluates its
//! module afresh, so a module changed between invocations is never served stale.
//!
//! As everywhere in Rhai, a module shares its constants with `export const NAME = …;`,
//! and its own functions reach them as `global::NAME`.

use crate::host::Host;
use crate::sdk::RhaiResultOf;
use crate::sdk::error;
use rhai::{
    AST, ASTFlags, ASTNode, Engine, EvalAltResult, Expr, Module, ModuleResolver, Position, Shared,
    Stmt,
};
use std::cell::RefCell;
use std::rc::Rc;

/// How deep imports may nest: the main script's imports are depth 1.
pub const MAX_IMPORT_DEPTH: usize = 8;

/// Names a module may not have: the SDK and helper modules (and `queue`, kept for later).
pub const RESERVED_MODULE_NAMES: &[&str] = &[
    "kv",
    "docs",
    "dead_letters",
    "log",
    "regex",
    "random",
    "time",
    "json",
    "base64",
    "hex",
    "url",
    "http",
    "files",
    "pubsub",
    "secrets",
    "email",
    "users",
    "queue",
];

/// Checks a module name: the identifier shape of SPEC §5 and not a reserved name.
///
/// ```
/// use picloud_rhai_shim::validate_module_name;
/// assert!(validate_module_name("pricing_v2").is_ok());
/// assert!(validate_module_name("2fast").is_err());
/// assert!(validate_module_name("kv").is_err());
/// ```
pub fn validate_module_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !valid {
        return Err(format!(
            "invalid module name {name:?}: a module name is a letter or `_` followed by at \
             most 63 letters, digits or `_`"
        ));
    }
    if RESERVED_MODULE_NAMES.contains(&name) {
        return Err(format!(
            "the module name `{name}` is reserved for the built-in `{name}` module"
        ));
    }
    Ok(())
}

/// Checks the literal `import "…"` names of a compiled script (imports whose path is
/// computed at run time are checked when they run).
pub(crate) fn check_literal_imports(ast: &AST) -> Result<(), String> {
    let mut problem = None;
    ast.walk(&mut |path: &[ASTNode<'_>]| {
        if let Some(ASTNode::Stmt(Stmt::Import(import, pos))) = path.last()
            && let Expr::StringConstant(name, _) = &import.0
            && let Err(e) = validate_module_name(name)
        {
            problem = Some(format!("{e}{}", at(*pos)));
            return false;
        }
        true
    });
    problem.map_or(Ok(()), Err)
}

/// Checks that a module script holds only functions, constants and imports.
pub(crate) fn check_module_shape(ast: &AST) -> Result<(), String> {
    for stmt in ast.statements() {
        let allowed = match stmt {
            Stmt::Var(_, flags, _) => flags.contains(ASTFlags::CONSTANT),
            Stmt::Import(..) | Stmt::Export(..) | Stmt::Noop(_) => true,
            _ => false,
        };
        if !allowed {
            return Err(format!(
                "a module may contain only functions (`fn`), constants (`const`) and \
                 imports{}",
                at(stmt.position())
            ));
        }
    }
    Ok(())
}

/// `" (line L, column C)"` for a known position, else nothing.
pub(crate) fn at(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        (Some(line), None) => format!(" (line {line})"),
        _ => String::new(),
    }
}

/// Resolves `import` through the host, tracking the chain of modules being loaded.
pub(crate) struct HostModuleResolver {
    host: Rc<dyn Host>,
    /// Names of the modules being loaded, outermost first.
    loading: RefCell<Vec<String>>,
}

impl HostModuleResolver {
    pub(crate) fn new(host: Rc<dyn Host>) -> Self {
        Self {
            host,
            loading: RefCell::new(Vec::new()),
        }
    }

    fn load(&self, engine: &Engine, name: &str) -> RhaiResultOf<Shared<Module>> {
        validate_module_name(name).map_err(error)?;
        {
            let loading = self.loading.borrow();
            if loading.iter().any(|n| n == name) {
                let chain = chain_of(&loading, name);
                return Err(error(format!("import cycle: {chain}")));
            }
            if loading.len() >= MAX_IMPORT_DEPTH {
                let chain = chain_of(&loading, name);
                return Err(error(format!(
                    "imports nest deeper than {MAX_IMPORT_DEPTH} modules: {chain}"
                )));
            }
        }
        let source = self
            .host
            .module_source(name)
            .ok_or_else(|| error(format!("module `{name}` not found")))?;
        let ast = compile_module(engine, name, &source)?;

        self.loading.borrow_mut().push(name.to_string());
        let _guard = PopOnDrop(&self.loading);
        let module = Module::eval_ast_as_new(rhai::Scope::new(), &ast, engine)?;
        Ok(Shared::new(module))
    }
}

/// Compiles a module script, checking its shape and its literal imports.
fn compile_module(engine: &Engine, name: &str, source: &str) -> RhaiResultOf<AST> {
    let mut ast = crate::script::compile(engine, source)
        .map_err(|e| error(format!("module `{name}` does not compile: {e}")))?;
    check_module_shape(&ast).map_err(|e| error(format!("module `{name}`: {e}")))?;
    ast.set_source(name);
    Ok(ast)
}

/// `a -> b -> name`.
fn chain_of(loading: &[String], name: &str) -> String {
    let mut chain: Vec<&str> = loading.iter().map(String::as_str).collect();
    chain.push(name);
    chain.join(" -> ")
}

/// Pops the innermost loading module however its evaluation ends.
struct PopOnDrop<'a>(&'a RefCell<Vec<String>>);

impl Drop for PopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().pop();
    }
}

impl ModuleResolver for HostModuleResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> RhaiResultOf<Shared<Module>> {
        self.load(engine, path).map_err(|mut e| {
            if e.position().is_none() {
                e.set_position(pos);
            }
            match *e {
                EvalAltResult::ErrorRuntime(..) => e,
                _ => Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)),
            }
        })
    }
}
