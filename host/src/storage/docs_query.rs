//! The docs query DSL (SPEC §4) compiled to SQL that runs in the database: SQLite's
//! JSON1 functions or PostgreSQL's jsonb operators, never a scan in Rust.
//!
//! A query is a JSON object. Each key is a dotted field path whose value is either a
//! literal (equality) or an object of operators (`$gt $gte $lt $lte $ne $in $nin $exists
//! $contains`, combined with AND), or one of `$and` / `$or` with a list of queries. All
//! keys of an object must hold at once.
//!
//! Semantics, identical on both backends:
//! - Comparisons (`$gt` …) take a number or a string and only match values of the same
//!   type: numbers numerically, strings in byte order.
//! - Equality with a number, string, boolean or array matches exactly that value (`1`
//!   equals `1.0`); equality with `null` matches null and missing fields; equality with an
//!   object is refused (match its fields with dotted paths).
//! - `$ne` and `$nin` also match documents where the field is missing.
//! - `$exists: true` matches any present value, null included.
//! - `$contains` matches arrays holding the value (a scalar) and, for a string operand,
//!   strings holding it as a substring.
//! - Sorting orders by type first (missing/null, numbers, strings, booleans, arrays,
//!   objects), then by value; ties are broken by document id.
//!
//! Field paths are segments of `A-Z a-z 0-9 _ -` starting with a letter or `_`, joined
//! by dots. Because of that rule they are written into the SQL as literals safely, which
//! keeps the field expressions identical to those of declared indexes (the planner
//! matches index expressions textually).

use super::Dialect;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Deepest nesting of `$and` / `$or`.
pub const MAX_DEPTH: usize = 8;
/// Most predicates in one query; each value of `$in` / `$nin` counts as one (each is
/// one comparison per document scanned). SQLite parses a chain of n ORs n levels deep and
/// refuses expressions deeper than 1000, so a query stays well below that.
pub const MAX_PREDICATES: usize = 500;
/// Most values of `$in` / `$nin`.
pub const MAX_IN_VALUES: usize = 500;
/// Most sort fields.
pub const MAX_SORT_FIELDS: usize = 8;
/// Most segments of a field path.
pub const MAX_PATH_SEGMENTS: usize = 16;
/// Longest path segment.
pub const MAX_SEGMENT_BYTES: usize = 64;
/// Longest field path: the most segments of the longest length, with their dots.
pub const MAX_PATH_BYTES: usize = MAX_PATH_SEGMENTS * (MAX_SEGMENT_BYTES + 1);

/// A query the DSL does not accept; the message names the operator or path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(message.into()))
}

/// A bound parameter of a compiled query.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (also JSON text cast to jsonb on PostgreSQL).
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

/// A validated dotted field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// Parses and validates `path` (`address.city`).
    pub fn parse(path: &str) -> Result<Self, QueryError> {
        if path.len() > MAX_PATH_BYTES {
            return invalid(format!(
                "a field path is at most {MAX_PATH_BYTES} bytes, got {}",
                path.len()
            ));
        }
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return invalid(format!(
                "field path {path:?} has more than {MAX_PATH_SEGMENTS} segments"
            ));
        }
        for segment in &segments {
            let mut bytes = segment.bytes();
            let valid = segment.len() <= MAX_SEGMENT_BYTES
                && bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
            if !valid {
                return invalid(format!(
                    "invalid field path {path:?}: each dot-separated segment must be 1-{MAX_SEGMENT_BYTES} \
                     characters of A-Z a-z 0-9 _ - starting with a letter or _"
                ));
            }
        }
        Ok(Self(segments))
    }

    /// The path as written.
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }

    /// The SQL expression of the field's value: JSON1 `json_extract` on SQLite (SQL
    /// scalars), jsonb on PostgreSQL. Declared indexes use exactly this expression.
    pub fn value_expr(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Sqlite => format!("json_extract(body, '{}')", self.sqlite_path()),
            Dialect::Postgres => format!("(body #> '{}')", self.pg_path()),
        }
    }

    /// The SQL expression of the field's JSON type; NULL when the field is missing.
    fn type_expr(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Sqlite => format!("json_type(body, '{}')", self.sqlite_path()),
            Dialect::Postgres => format!("jsonb_typeof(body #> '{}')", self.pg_path()),
        }
    }

    /// PostgreSQL: the field as text (strings unquoted).
    fn pg_text_expr(&self) -> String {
        format!("(body #>> '{}')", self.pg_path())
    }

    fn sqlite_path(&self) -> String {
        let mut path = String::from("$");
        for segment in &self.0 {
            let _ = write!(path, ".\"{segment}\"");
        }
        path
    }

    /// A PostgreSQL text array of the segments, each quoted: an unquoted `null` element
    /// would be SQL NULL (and a path with it matches nothing or everything).
    fn pg_path(&self) -> String {
        let mut path = String::from("{");
        for (i, segment) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(path, "{sep}\"{segment}\"");
        }
        path.push('}');
        path
    }
}

/// A compiled filter: a SQL boolean expression and its parameters, numbered from the
/// `first` number given to [`compile_filter`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The boolean SQL expression.
    pub sql: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
}

/// Compiles `query` for `dialect`; parameters are numbered `$first`, `$first+1`, ….
pub fn compile_filter(dialect: Dialect, query: &Value, first: usize) -> Result<Filter, QueryError> {
    let Value::Object(query) = query else {
        return invalid("a query must be a JSON object");
    };
    let mut compiler = Compiler {
        dialect,
        next: first,
        params: Vec::new(),
        predicates: 0,
    };
    let sql = compiler.object(query, 0)?;
    Ok(Filter {
        sql,
        params: compiler.params,
    })
}

/// The `ORDER BY` list for `sort` (fields, `-` prefix for descending), always ending
/// with the id so pages are stable.
pub fn compile_sort(dialect: Dialect, sort: &[String]) -> Result<String, QueryError> {
    if sort.len() > MAX_SORT_FIELDS {
        return invalid(format!("at most {MAX_SORT_FIELDS} sort fields"));
    }
    let mut keys = Vec::new();
    for field in sort {
        if field.len() > MAX_PATH_BYTES + 1 {
            return invalid(format!(
                "sort: a sort field is at most {} bytes, got {}",
                MAX_PATH_BYTES + 1,
                field.len()
            ));
        }
        let (path, dir) = match field.strip_prefix('-') {
            Some(path) => (path, "DESC"),
            None => (field.strip_prefix('+').unwrap_or(field), "ASC"),
        };
        let path = FieldPath::parse(path).map_err(|e| QueryError(format!("sort: {}", e.0)))?;
        let ty = path.type_expr(dialect);
        match dialect {
            Dialect::Sqlite => {
                keys.push(format!(
                    "CASE {ty} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
                     WHEN 'false' THEN 3 WHEN 'true' THEN 3 WHEN 'array' THEN 4 \
                     WHEN 'object' THEN 5 ELSE 0 END {dir}"
                ));
                keys.push(format!("{} {dir}", path.value_expr(dialect)));
            }
            Dialect::Postgres => {
                let text = path.pg_text_expr();
                keys.push(format!(
                    "CASE {ty} WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'boolean' THEN 3 \
                     WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END {dir}"
                ));
                keys.push(format!(
                    "CASE WHEN {ty} = 'number' THEN {text}::numeric END {dir}"
                ));
                keys.push(format!(
                    "CASE WHEN {ty} <> 'number' THEN {text} COLLATE \"C\" END {dir}"
                ));
            }
        }
    }
    keys.push("id ASC".into());
    Ok(keys.join(", "))
}

/// Which sides of a range the operators on one field bound, per operand type.
#[derive(Clone, Copy)]
struct Sides {
    number_low: bool,
    number_high: bool,
    text_low: bool,
    text_high: bool,
}

struct Compiler {
    dialect: Dialect,
    next: usize,
    params: Vec<Param>,
    predicates: usize,
}

/// A scalar operand, sorted by what the SQL needs to know about it.
enum Operand<'a> {
    Null,
    Bool(bool),
    Number(&'a serde_json::Number),
    Text(&'a str),
    Array(&'a Value),
}

fn operand<'a>(op: &str, value: &'a Value) -> Result<Operand<'a>, QueryError> {
    Ok(match value {
        Value::Null => Operand::Null,
        Value::Bool(b) => Operand::Bool(*b),
        Value::Number(n) => Operand::Number(n),
        Value::String(s) => Operand::Text(s),
        Value::Array(_) => Operand::Array(value),
        Value::Object(_) => {
            return invalid(format!(
                "{op}: comparing with an object is not supported; match its fields with dotted paths"
            ));
        }
    })
}

impl Compiler {
    fn bind(&mut self, param: Param) -> String {
        let placeholder = format!("${}", self.next);
        self.next += 1;
        self.params.push(param);
        placeholder
    }

    fn bind_number(&mut self, n: &serde_json::Number) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let p = self.bind(Param::Text(n.to_string()));
                format!("{p}::jsonb")
            }
            Dialect::Sqlite => match n.as_i64() {
                Some(i) => self.bind(Param::Int(i)),
                None => self.bind(Param::Float(n.as_f64().unwrap_or(f64::NAN))),
            },
        }
    }

    fn count(&mut self) -> Result<(), QueryError> {
        self.predicates += 1;
        if self.predicates > MAX_PREDICATES {
            return invalid(format!(
                "a query may hold at most {MAX_PREDICATES} conditions"
            ));
        }
        Ok(())
    }

    /// All keys of `query` at once.
    fn object(&mut self, query: &Map<String, Value>, depth: usize) -> Result<String, QueryError> {
        let mut parts = Vec::new();
        for (key, value) in query {
            match key.as_str() {
                "$and" | "$or" => parts.push(self.logical(key, value, depth)?),
                op if op.starts_with('$') => {
                    return invalid(format!(
                        "unknown operator {op:?} at the top of a query (use $and or $or, or a field path)"
                    ));
                }
                path => {
                    let path = FieldPath::parse(path)?;
                    parts.push(self.field(&path, value)?);
                }
            }
        }
        Ok(match parts.len() {
            0 => "1 = 1".into(),
            1 => parts.pop().unwrap_or_default(),
            _ => format!("({})", parts.join(" AND ")),
        })
    }

    fn logical(&mut self, op: &str, value: &Value, depth: usize) -> Result<String, QueryError> {
        if depth >= MAX_DEPTH {
            return invalid(format!(
                "{op}: queries nest at most {MAX_DEPTH} levels deep"
            ));
        }
        let Value::Array(items) = value else {
            return invalid(format!("{op} needs a list of queries"));
        };
        if items.is_empty() {
            return invalid(format!("{op} needs at least one query"));
        }
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(item) = item else {
                return invalid(format!("{op} needs a list of query objects"));
            };
            parts.push(self.object(item, depth + 1)?);
        }
        let joiner = if op == "$and" { " AND " } else { " OR " };
        Ok(format!("({})", parts.join(joiner)))
    }

    /// The conditions on one field: a literal (equality) or an object of operators.
    fn field(&mut self, path: &FieldPath, value: &Value) -> Result<String, QueryError> {
        let operators = match value {
            Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => map,
            Value::Object(_) => {
                return invalid(format!(
                    "{}: equality with an object is not supported; match its fields with dotted paths",
                    path.dotted()
                ));
            }
            literal => {
                self.count()?;
                return self.equals(path, literal, "equality");
            }
        };
        // Which sides of a range the operators bound themselves, per operand type.
        let bounds = |ops: [&str; 2], is_type: fn(&Value) -> bool| {
            operators
                .iter()
                .any(|(op, v)| ops.contains(&op.as_str()) && is_type(v))
        };
        let sides = Sides {
            number_low: bounds(["$gt", "$gte"], Value::is_number),
            number_high: bounds(["$lt", "$lte"], Value::is_number),
            text_low: bounds(["$gt", "$gte"], Value::is_string),
            text_high: bounds(["$lt", "$lte"], Value::is_string),
        };
        let mut parts = Vec::new();
        for (op, operand_value) in operators {
            // `$in` / `$nin` count their values instead (in `one_of`).
            if !matches!(op.as_str(), "$in" | "$nin") {
                self.count()?;
            }
            let at = format!("{}: {op}", path.dotted());
            let sql = match op.as_str() {
                "$gt" | "$gte" | "$lt" | "$lte" => {
                    self.compare(path, op, operand_value, &at, sides)?
                }
                "$ne" => {
                    let eq = self.equals(path, operand_value, &at)?;
                    negate(&eq)
                }
                "$in" => self.one_of(path, operand_value, &at)?,
                "$nin" => {
                    let any = self.one_of(path, operand_value, &at)?;
                    negate(&any)
                }
                "$exists" => {
                    let Value::Bool(exists) = operand_value else {
                        return invalid(format!("{at} needs true or false"));
                    };
                    let expr = match self.dialect {
                        Dialect::Sqlite => path.type_expr(self.dialect),
                        Dialect::Postgres => path.value_expr(self.dialect),
                    };
                    if *exists {
                        format!("{expr} IS NOT NULL")
                    } else {
                        format!("{expr} IS NULL")
                    }
                }
                "$contains" => self.contains(path, operand_value, &at)?,
                other if other.starts_with('$') => {
                    return invalid(format!(
                        "{}: unknown operator {other:?} (known: $gt $gte $lt $lte $ne $in $nin $exists $contains)",
                        path.dotted()
                    ));
                }
                other => {
                    return invalid(format!(
                        "{}: {other:?} mixes a field name with operators; use a dotted path",
                        path.dotted()
                    ));
                }
            };
            parts.push(sql);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            format!("({})", parts.join(" AND "))
        })
    }

    /// Equality with a literal; never true for a missing field unless the literal is null.
    fn equals(&mut self, path: &FieldPath, value: &Value, at: &str) -> Result<String, QueryError> {
        let ty = path.type_expr(self.dialect);
        let val = path.value_expr(self.dialect);
        Ok(match (self.dialect, operand(at, value)?) {
            (_, Operand::Null) => match self.dialect {
                Dialect::Sqlite => format!("({ty} IS NULL OR {ty} = 'null')"),
                Dialect::Postgres => format!("({val} IS NULL OR {ty} = 'null')"),
            },
            (Dialect::Sqlite, Operand::Bool(b)) => {
                format!("{ty} = '{}'", if b { "true" } else { "false" })
            }
            (Dialect::Sqlite, Operand::Number(n)) => {
                let p = self.bind_number(n);
                format!("({ty} IN ('integer', 'real') AND {val} = {p})")
            }
            (Dialect::Sqlite, Operand::Text(s)) => {
                let p = self.bind(Param::Text(s.to_owned()));
                format!("({ty} = 'text' AND {val} = {p})")
            }
            (Dialect::Sqlite, Operand::Array(a)) => {
                let p = self.bind(Param::Text(a.to_string()));
                format!("({ty} = 'array' AND {val} = json({p}))")
            }
            (Dialect::Postgres, _) => {
                let p = self.bind(Param::Text(value.to_string()));
                format!("{val} = {p}::jsonb")
            }
        })
    }

    fn compare(
        &mut self,
        path: &FieldPath,
        op: &str,
        value: &Value,
        at: &str,
        sides: Sides,
    ) -> Result<String, QueryError> {
        let sql_op = match op {
            "$gt" => ">",
            "$gte" => ">=",
            "$lt" => "<",
            _ => "<=",
        };
        let ty = path.type_expr(self.dialect);
        let val = path.value_expr(self.dialect);
        // SQLite: when the query bounds only one side of the range, the other side is
        // bounded too, by where the operand's type ends in SQLite's order of values
        // (numbers < text < blobs). It changes no answer but makes the condition a
        // two-sided range, which the planner prices low enough to pick a declared index
        // over the primary key. (With both sides given, an extra bound could be picked
        // instead of the real one, so none is added.)
        let upward = sql_op.starts_with('>');
        Ok(match (self.dialect, value) {
            (Dialect::Sqlite, Value::Number(n)) => {
                let p = self.bind_number(n);
                let bound = match (upward, sides.number_low, sides.number_high) {
                    (true, _, false) => format!(" AND {val} < ''"),
                    (false, false, _) => format!(" AND {val} >= -9e999"),
                    _ => String::new(),
                };
                format!("({ty} IN ('integer', 'real') AND {val} {sql_op} {p}{bound})")
            }
            (Dialect::Sqlite, Value::String(s)) => {
                let p = self.bind(Param::Text(s.clone()));
                let bound = match (upward, sides.text_low, sides.text_high) {
                    (true, _, false) => format!(" AND {val} < x''"),
                    (false, false, _) => format!(" AND {val} >= ''"),
                    _ => String::new(),
                };
                format!("({ty} = 'text' AND {val} {sql_op} {p}{bound})")
            }
            (Dialect::Postgres, Value::Number(n)) => {
                let p = self.bind_number(n);
                format!("({ty} = 'number' AND {val} {sql_op} {p})")
            }
            (Dialect::Postgres, Value::String(s)) => {
                let p = self.bind(Param::Text(s.clone()));
                let text = path.pg_text_expr();
                format!("({ty} = 'string' AND {text} COLLATE \"C\" {sql_op} {p})")
            }
            _ => return invalid(format!("{at} needs a number or a string")),
        })
    }

    fn one_of(&mut self, path: &FieldPath, value: &Value, at: &str) -> Result<String, QueryError> {
        let Value::Array(values) = value else {
            return invalid(format!("{at} needs a list of values"));
        };
        if values.len() > MAX_IN_VALUES {
            return invalid(format!("{at} takes at most {MAX_IN_VALUES} values"));
        }
        if values.is_empty() {
            self.count()?;
            return Ok("1 = 0".into());
        }
        let parts = values
            .iter()
            .map(|v| {
                self.count()?;
                self.equals(path, v, at)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(" OR ")))
    }

    fn contains(
        &mut self,
        path: &FieldPath,
        value: &Value,
        at: &str,
    ) -> Result<String, QueryError> {
        let ty = path.type_expr(self.dialect);
        match self.dialect {
            Dialect::Sqlite => {
                let sqlite_path = path.sqlite_path();
                let element = match operand(at, value)? {
                    Operand::Null => "e.type = 'null'".to_owned(),
                    Operand::Bool(b) => format!("e.type = '{}'", if b { "true" } else { "false" }),
                    Operand::Number(n) => {
                        let p = self.bind_number(n);
                        format!("e.type IN ('integer', 'real') AND e.value = {p}")
                    }
                    Operand::Text(s) => {
                        let p = self.bind(Param::Text(s.to_owned()));
                        format!("e.type = 'text' AND e.value = {p}")
                    }
                    Operand::Array(_) => {
                        return invalid(format!("{at} needs a scalar value, not a list"));
                    }
                };
                let in_array = format!(
                    "({ty} = 'array' AND EXISTS (SELECT 1 FROM json_each(body, '{sqlite_path}') AS e WHERE {element}))"
                );
                Ok(match value {
                    Value::String(s) => {
                        let p = self.bind(Param::Text(s.clone()));
                        let val = path.value_expr(self.dialect);
                        format!("({in_array} OR ({ty} = 'text' AND instr({val}, {p}) > 0))")
                    }
                    _ => in_array,
                })
            }
            Dialect::Postgres => {
                if let Operand::Array(_) = operand(at, value)? {
                    return invalid(format!("{at} needs a scalar value, not a list"));
                }
                let val = path.value_expr(self.dialect);
                let p = self.bind(Param::Text(Value::Array(vec![value.clone()]).to_string()));
                let in_array = format!("({ty} = 'array' AND {val} @> {p}::jsonb)");
                Ok(match value {
                    Value::String(s) => {
                        let p = self.bind(Param::Text(s.clone()));
                        let text = path.pg_text_expr();
                        format!("({in_array} OR ({ty} = 'string' AND strpos({text}, {p}) > 0))")
                    }
                    _ => in_array,
                })
            }
        }
    }
}

/// NOT of a condition, where an unknown (NULL, e.g. a missing field) counts as false.
fn negate(condition: &str) -> String {
    format!("NOT COALESCE({condition}, FALSE)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(query: Value) -> String {
        compile_filter(Dialect::Sqlite, &query, 1).unwrap_err().0
    }

    #[test]
    fn field_paths_are_checked_and_written_as_literals() {
        let path = FieldPath::parse("address.city_name").unwrap();
        assert_eq!(
            path.value_expr(Dialect::Sqlite),
            r#"json_extract(body, '$."address"."city_name"')"#
        );
        assert_eq!(
            path.value_expr(Dialect::Postgres),
            r#"(body #> '{"address","city_name"}')"#
        );
        for bad in ["", "a..b", "a'b", "0", "a.1", "a b", "$x", "a.\"b\""] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn parameters_are_numbered_in_order_of_appearance() {
        let f = compile_filter(
            Dialect::Postgres,
            &json!({"a": 1, "b": {"$gt": "x", "$lt": "y"}}),
            3,
        )
        .unwrap();
        let first = f.sql.find("$3").unwrap();
        let second = f.sql.find("$4").unwrap();
        let third = f.sql.find("$5").unwrap();
        assert!(first < second && second < third, "{}", f.sql);
        assert_eq!(f.params.len(), 3);
    }

    #[test]
    fn invalid_queries_name_the_offending_operator_or_path() {
        assert!(err(json!({"a": {"$regex": "x"}})).contains("$regex"));
        assert!(err(json!({"$where": "1"})).contains("$where"));
        assert!(err(json!({"a": {"$gt": true}})).contains("a: $gt"));
        assert!(err(json!({"a": {"$in": 3}})).contains("a: $in"));
        assert!(err(json!({"a": {"$exists": 1}})).contains("a: $exists"));
        assert!(err(json!({"a": {"b": 1}})).contains("dotted paths"));
        assert!(err(json!({"a": {"$gt": 1, "b": 2}})).contains("\"b\""));
        assert!(err(json!({"$or": []})).contains("$or"));
        assert!(err(json!({"$and": {}})).contains("$and"));
        assert!(err(json!({"bad path": 1})).contains("bad path"));
        assert!(err(json!([1])).contains("JSON object"));
        let mut deep = json!({"a": 1});
        for _ in 0..=MAX_DEPTH {
            deep = json!({ "$and": [deep] });
        }
        assert!(err(deep).contains("nest"));
    }

    #[test]
    fn sort_fields_are_validated() {
        assert!(compile_sort(Dialect::Sqlite, &["-a.b".into(), "c".into()]).is_ok());
        let e = compile_sort(Dialect::Sqlite, &["a b".into()]).unwrap_err();
        assert!(e.0.starts_with("sort:"), "{e}");
    }
}
