//! The real server over HTTP.
