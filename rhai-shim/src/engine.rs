//! The Rhai engine of a PiCloud script: limits, SDK and helper modules, imports, logging.

use crate::host::{Host, LogLevel};
use crate::resolver::HostModuleResolver;
use rhai::{Engine, Token};
use std::cell::Cell;
use std::rc::Rc;

/// Operations one run may take. Rhai counts an operation per expression evaluated and per
/// loop iteration; a typical handler takes a few thousand. In the wasm shim an operation
/// costs roughly 500–700 units of fuel, so this budget ends a runaway loop at about half
/// of the host's default fuel (10⁹): the script gets this clear error, not
/// `fuel_exhausted`. In PiCloud the cap follows the app's fuel ([`Limits::for_sandbox`]);
/// this is its value at the default fuel.
pub const DEFAULT_MAX_OPERATIONS: u64 = 1_000_000;
/// Fuel per Rhai operation in [`Limits::for_sandbox`]: above what an operation costs in
/// the shim (500–700 units), so the operation limit comes before the fuel runs out.
pub const FUEL_PER_OPERATION: u64 = 1_000;
/// The memory limit the default string, array and map sizes are meant for (the host's
/// default of 128 MiB); [`Limits::for_sandbox`] scales them with the app's memory limit.
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Nested function calls (Rhai's own default): deep enough for any reasonable recursion,
/// shallow enough for the wasm stack.
pub const DEFAULT_MAX_CALL_LEVELS: usize = 64;
/// Nesting of expressions at the top level (Rhai's own default).
pub const DEFAULT_MAX_EXPR_DEPTH: usize = 64;
/// Nesting of expressions inside functions (Rhai's own default).
pub const DEFAULT_MAX_FUNCTION_EXPR_DEPTH: usize = 32;
/// Bytes in one string: the response body cap of SPEC §3 (10 MiB).
pub const DEFAULT_MAX_STRING_SIZE: usize = 10 * 1024 * 1024;
/// Elements in one array: room for any SDK page (at most 1000) many times over.
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 100_000;
/// Properties in one object map.
pub const DEFAULT_MAX_MAP_SIZE: usize = 100_000;
/// Modules one run may import in all (each `import` statement executed counts).
pub const DEFAULT_MAX_MODULES: usize = 256;

/// Rhai's own limits for one script run. A breach ends the run with a clear error; wasm
/// fuel, the wall-clock deadline and the memory limit stay the hard backstop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Operations per run ([`DEFAULT_MAX_OPERATIONS`]).
    pub max_operations: u64,
    /// Nested function calls ([`DEFAULT_MAX_CALL_LEVELS`]).
    pub max_call_levels: usize,
    /// Expression nesting at the top level ([`DEFAULT_MAX_EXPR_DEPTH`]).
    pub max_expr_depth: usize,
    /// Expression nesting inside functions ([`DEFAULT_MAX_FUNCTION_EXPR_DEPTH`]).
    pub max_function_expr_depth: usize,
    /// Bytes per string ([`DEFAULT_MAX_STRING_SIZE`]).
    pub max_string_size: usize,
    /// Elements per array ([`DEFAULT_MAX_ARRAY_SIZE`]).
    pub max_array_size: usize,
    /// Properties per object map ([`DEFAULT_MAX_MAP_SIZE`]).
    pub max_map_size: usize,
    /// Modules imported per run ([`DEFAULT_MAX_MODULES`]).
    pub max_modules: usize,
}

impl Limits {
    /// The limits of a script in a sandbox with `fuel` units of fuel and `memory_bytes` of
    /// linear memory: one operation per [`FUEL_PER_OPERATION`] units of fuel (at least
    /// one), and string, array and map sizes in proportion to a memory limit above
    /// [`DEFAULT_MEMORY_BYTES`] (never below the defaults: under a smaller memory limit
    /// that limit itself stops a script, as it always did). The other limits keep their
    /// defaults: they guard the wasm stack, which grows with neither.
    ///
    /// ```
    /// use picloud_rhai_shim::{DEFAULT_MAX_OPERATIONS, Limits};
    /// let default = Limits::for_sandbox(1_000_000_000, 128 << 20);
    /// assert_eq!(default, Limits::default());
    /// let raised = Limits::for_sandbox(100_000_000_000, 512 << 20);
    /// assert_eq!(raised.max_operations, 100 * DEFAULT_MAX_OPERATIONS);
    /// assert_eq!(raised.max_string_size, 4 * default.max_string_size);
    /// assert_eq!(Limits::for_sandbox(1_000_000_000, 64 << 20), default);
    /// ```
    pub fn for_sandbox(fuel: u64, memory_bytes: u64) -> Self {
        let scale = |default: usize| -> usize {
            let scaled = (default as u128 * u128::from(memory_bytes)
                / u128::from(DEFAULT_MEMORY_BYTES)) as u64;
            // At most wasm32's usize.
            scaled.clamp(default as u64, u64::from(u32::MAX)) as usize
        };
        Self {
            max_operations: (fuel / FUEL_PER_OPERATION).max(1),
            max_string_size: scale(DEFAULT_MAX_STRING_SIZE),
            max_array_size: scale(DEFAULT_MAX_ARRAY_SIZE),
            max_map_size: scale(DEFAULT_MAX_MAP_SIZE),
            ..Self::default()
        }
    }

    /// Sets these limits on `engine`.
    pub fn apply(&self, engine: &mut Engine) {
        engine
            .set_max_operations(self.max_operations)
            .set_max_call_levels(self.max_call_levels)
            .set_max_expr_depths(self.max_expr_depth, self.max_function_expr_depth)
            .set_max_string_size(self.max_string_size)
            .set_max_array_size(self.max_array_size)
            .set_max_map_size(self.max_map_size)
            .set_max_modules(self.max_modules);
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: DEFAULT_MAX_OPERATIONS,
            max_call_levels: DEFAULT_MAX_CALL_LEVELS,
            max_expr_depth: DEFAULT_MAX_EXPR_DEPTH,
            max_function_expr_depth: DEFAULT_MAX_FUNCTION_EXPR_DEPTH,
            max_string_size: DEFAULT_MAX_STRING_SIZE,
            max_array_size: DEFAULT_MAX_ARRAY_SIZE,
            max_map_size: DEFAULT_MAX_MAP_SIZE,
            max_modules: DEFAULT_MAX_MODULES,
        }
    }
}

/// The engine PiCloud scripts run on, with the default [`Limits`].
///
/// It has Rhai's standard library, the SDK modules (`kv`, `docs`, `files`, `http`,
/// `email`, `secrets`, `users`, `pubsub`, `dead_letters`, `log`, `runtime`), the helper
/// modules (`json`, `base64`, `hex`, `url`, `time`, `random`, `regex`), `import` of the
/// app's module scripts through [`Host::module_source`], and `print`/`debug` going to the
/// invocation's log.
pub fn build_engine(host: Rc<dyn Host>) -> Engine {
    build_engine_with_limits(host, Limits::default())
}

/// [`build_engine`] with explicit limits.
pub fn build_engine_with_limits(host: Rc<dyn Host>, limits: Limits) -> Engine {
    let mut engine = Engine::new();
    limits.apply(&mut engine);

    let h = host.clone();
    engine.on_print(move |text| h.log(LogLevel::Info, text, None));
    let h = host.clone();
    engine.on_debug(move |text, _source, _pos| h.log(LogLevel::Debug, text, None));
    allow_keywords_after_namespace(&mut engine);

    engine.set_module_resolver(HostModuleResolver::new(host.clone()));
    crate::sdk::register(&mut engine, &host);
    crate::helpers::register(&mut engine, &host);
    engine
}

/// Lets a keyword name a module function: `log::debug(…)` (the reserved word `debug` after
/// `::` is read as an ordinary name).
fn allow_keywords_after_namespace(engine: &mut Engine) {
    let after_double_colon = Cell::new(false);
    #[allow(deprecated)] // rhai marks the token mapper "volatile", not deprecated
    engine.on_parse_token(move |token, _pos, _state| {
        let was_after = after_double_colon.replace(matches!(token, Token::DoubleColon));
        match token {
            Token::Reserved(word) if was_after && rhai::is_valid_identifier(&word) => {
                Token::Identifier(word)
            }
            token => token,
        }
    });
}
