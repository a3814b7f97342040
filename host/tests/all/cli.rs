//! The real `picloud` binary against a real server.
