//! What a client or a guest can do to the HTTP exchange: credentials reaching guests,
//! response framing, header floods, slow clients, origins and cookies.
