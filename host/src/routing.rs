//! Route patterns (`METHOD /path/:param/*rest`) and the per-app route table.

use crate::storage::RouteRecord;
use std::collections::HashMap;

/// Methods a route may name; `ANY` matches every method without a route of its own.
pub const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// Splits and checks `"GET /orders/:id"` into (method, path).
pub fn parse_route_spec(spec: &str) -> Result<(String, String), String> {
    let mut parts = spec.split_whitespace();
    let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("route {spec:?} must look like 'GET /path/:param'"));
    };
    let method = method.to_ascii_uppercase();
    check_route(&method, path)?;
    Ok((method, path.to_owned()))
}

/// Checks a method and a path pattern.
pub fn check_route(method: &str, path: &str) -> Result<(), String> {
    if !METHODS.contains(&method) {
        return Err(format!(
            "method {method:?} must be one of {}",
            METHODS.join(", ")
        ));
    }
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with '/'"));
    }
    if path.len() > 1024 {
        return Err("path is longer than 1024 bytes".into());
    }
    if path == "/" {
        return Ok(());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Some(name) = segment
            .strip_prefix(':')
            .or_else(|| segment.strip_prefix('*'))
        {
            if !is_identifier(name) {
                return Err(format!(
                    "parameter {segment:?} in {path:?} needs a name of letters, digits and '_'"
                ));
            }
            if segment.starts_with('*') && !last {
                return Err(format!(
                    "the wildcard {segment:?} must be the last segment of {path:?}"
                ));
            }
        } else if segment.is_empty() {
            if !last {
                return Err(format!("path {path:?} has an empty segment"));
            }
        } else if segment.contains(['{', '}', ':', '*']) {
            return Err(format!(
                "segment {segment:?} of {path:?} may not contain '{{', '}}', ':' or '*'"
            ));
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `:id` → `{id}`, `*rest` → `{*rest}` (matchit's syntax).
fn to_matchit(path: &str) -> String {
    path.split('/')
        .map(|s| match (s.strip_prefix(':'), s.strip_prefix('*')) {
            (Some(name), _) => format!("{{{name}}}"),
            (_, Some(name)) => format!("{{*{name}}}"),
            _ => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `dispatch` of a route that answers 202 and runs its function from the queue.
pub const DISPATCH_ASYNC: &str = "async";
/// `dispatch` of a route whose answer is the function's (the default).
pub const DISPATCH_SYNC: &str = "sync";

/// A request's match: the function to run and the route parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Function name.
    pub function: String,
    /// Parameter names and their (decoded) values.
    pub params: Vec<(String, String)>,
    /// The route is async: answer 202 and run the function from the queue.
    pub is_async: bool,
}

/// What a route leads to.
#[derive(Debug, Clone)]
struct Target {
    function: String,
    is_async: bool,
}

/// The routes of one app, by method. Static segments win over parameters, parameters
/// over wildcards; a method's own routes win over `ANY`.
#[derive(Default)]
pub struct RouteTable {
    by_method: HashMap<String, matchit::Router<Target>>,
}

impl RouteTable {
    /// Builds the table; routes that conflict with an earlier one are reported and skipped.
    pub fn build(routes: &[RouteRecord]) -> Self {
        let mut table = Self::default();
        for route in routes {
            let is_async = route.dispatch == DISPATCH_ASYNC;
            if let Err(e) = table.insert_with(&route.method, &route.path, &route.function, is_async)
            {
                tracing::warn!(method = %route.method, path = %route.path, error = %e, "skipping conflicting route");
            }
        }
        table
    }

    /// Adds one (sync) route; an error when it conflicts with one already in the table.
    pub fn insert(&mut self, method: &str, path: &str, function: &str) -> Result<(), String> {
        self.insert_with(method, path, function, false)
    }

    /// Adds one route, async or not; an error when it conflicts with one already in the
    /// table.
    pub fn insert_with(
        &mut self,
        method: &str,
        path: &str,
        function: &str,
        is_async: bool,
    ) -> Result<(), String> {
        let target = Target {
            function: function.to_owned(),
            is_async,
        };
        self.by_method
            .entry(method.to_owned())
            .or_default()
            .insert(to_matchit(path), target)
            .map_err(|e| format!("route {method} {path} conflicts with an existing route: {e}"))
    }

    /// The route for `method` and `path`.
    pub fn lookup(&self, method: &str, path: &str) -> Option<RouteMatch> {
        [method, "ANY"].into_iter().find_map(|m| {
            let matched = self.by_method.get(m)?.at(path).ok()?;
            let params = matched
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                .collect();
            Some(RouteMatch {
                function: matched.value.function.clone(),
                params,
                is_async: matched.value.is_async,
            })
        })
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str, &str)]) -> RouteTable {
        let mut t = RouteTable::default();
        for (m, p, f) in routes {
            t.insert(m, p, f).unwrap();
        }
        t
    }

    #[test]
    fn params_and_wildcards_are_captured_and_decoded() {
        let t = table(&[
            ("GET", "/orders/:id", "get-order"),
            ("GET", "/files/*rest", "files"),
        ]);
        let m = t.lookup("GET", "/orders/a%20b").unwrap();
        assert_eq!(
            m,
            RouteMatch {
                function: "get-order".into(),
                params: vec![("id".into(), "a b".into())],
                is_async: false,
            }
        );
        assert_eq!(
            t.lookup("GET", "/files/x/y.txt").unwrap().params,
            vec![("rest".into(), "x/y.txt".into())]
        );
        assert_eq!(t.lookup("POST", "/orders/1"), None);
    }

    #[test]
    fn static_segments_win_over_params_and_methods_over_any() {
        let t = table(&[
            ("GET", "/orders/:id", "one"),
            ("GET", "/orders/new", "form"),
            ("ANY", "/orders/:id", "any"),
        ]);
        assert_eq!(t.lookup("GET", "/orders/new").unwrap().function, "form");
        assert_eq!(t.lookup("GET", "/orders/7").unwrap().function, "one");
        assert_eq!(t.lookup("DELETE", "/orders/7").unwrap().function, "any");
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        assert!(parse_route_spec("GET /a/:id").is_ok());
        assert!(parse_route_spec("FETCH /a").unwrap_err().contains("method"));
        assert!(
            parse_route_spec("GET a")
                .unwrap_err()
                .contains("start with '/'")
        );
        assert!(
            parse_route_spec("GET /*rest/x")
                .unwrap_err()
                .contains("last segment")
        );
        assert!(
            parse_route_spec("GET /a/:")
                .unwrap_err()
                .contains("needs a name")
        );
        assert!(
            parse_route_spec("GET")
                .unwrap_err()
                .contains("must look like")
        );
    }
}
