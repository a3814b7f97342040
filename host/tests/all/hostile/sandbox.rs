//! What a guest can do to the host's memory and the instance pool: log floods,
//! instance-slot hoarding.
