//! What a guest can do to the database and to other tenants' data: expensive queries
//! past the deadline, amplified strings, unbounded growth, poisoned record batches.
