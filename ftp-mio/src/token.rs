//! The meaning of a [`mio::Token`] in one event loop.
//!
//! The top of the token space is reserved for the loop's own sources (the
//! [`mio::Waker`] and the control listeners); every other token names one
//! socket of one connection: its index in the loop's connection slab,
//! shifted left, plus the socket's [`Role`] in the low bits. A token can
//! outlive its socket by one `poll` batch (an event already fetched for a
//! socket closed meanwhile); such stale events are harmless because every
//! socket operation is non-blocking and `WouldBlock` just clears the flag
//! the event set.

use mio::Token;

/// Bits of a connection token that hold the [`Role`].
const ROLE_BITS: u32 = 4;
const ROLE_MASK: usize = (1 << ROLE_BITS) - 1;
/// Role numbers below this are fixed roles; from it on, passive slots.
const FIRST_PASSIVE: usize = 2;

/// Passive listeners one connection may hold at once (the engine holds at
/// most one, plus the one a starting transfer still waits on).
pub(crate) const PASSIVE_SLOTS: u8 = (ROLE_MASK + 1 - FIRST_PASSIVE) as u8;

/// Tokens from here up belong to the loop itself, never to a connection.
const RESERVED_FROM: usize = usize::MAX - 1024;

/// Tokens from here to [`RESERVED_FROM`] name connections that wait for
/// their PROXY header, by index; connection tokens are below.
const HEADER_BASE: usize = 1 << (usize::BITS - 2);

/// The token of the loop's [`mio::Waker`] (worker results, shutdown).
pub(crate) const WAKER: Token = Token(usize::MAX);

/// What one socket of a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The control connection.
    Control,
    /// The data connection of the running transfer.
    Data,
    /// A passive listener, by its slot number (below [`PASSIVE_SLOTS`]).
    Passive(u8),
}

/// What a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The waker.
    Waker,
    /// Control listener number `n`.
    Listener(usize),
    /// A socket of the connection at this slab index.
    Conn(usize, Role),
    /// The connection waiting for its PROXY header at this index.
    Header(usize),
}

/// The token of control listener number `n`.
pub(crate) fn listener(n: usize) -> Token {
    Token(usize::MAX - 1 - n)
}

/// The token of one socket of the connection at `index`.
pub(crate) fn conn(index: usize, role: Role) -> Token {
    let role = match role {
        Role::Control => 0,
        Role::Data => 1,
        Role::Passive(slot) => FIRST_PASSIVE + usize::from(slot),
    };
    Token((index << ROLE_BITS) | role)
}

/// Whether a connection at `index` can still be given tokens.
pub(crate) fn index_fits(index: usize) -> bool {
    index < (HEADER_BASE >> ROLE_BITS)
}

/// The token of the connection waiting for its PROXY header at `index`.
pub(crate) fn header(index: usize) -> Token {
    Token(HEADER_BASE + index)
}

/// Whether a connection waiting for its header at `index` can be given a
/// token.
pub(crate) fn header_fits(index: usize) -> bool {
    index < RESERVED_FROM - HEADER_BASE
}

/// Decodes a token.
pub(crate) fn target(token: Token) -> Target {
    if token == WAKER {
        return Target::Waker;
    }
    if token.0 >= RESERVED_FROM {
        return Target::Listener(usize::MAX - 1 - token.0);
    }
    if token.0 >= HEADER_BASE {
        return Target::Header(token.0 - HEADER_BASE);
    }
    let role = match token.0 & ROLE_MASK {
        0 => Role::Control,
        1 => Role::Data,
        n => Role::Passive((n - FIRST_PASSIVE) as u8),
    };
    Target::Conn(token.0 >> ROLE_BITS, role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(target(WAKER), Target::Waker);
        assert_eq!(target(listener(0)), Target::Listener(0));
        assert_eq!(target(listener(7)), Target::Listener(7));
        for index in [0, 1, 12345] {
            for role in [Role::Control, Role::Data, Role::Passive(0)] {
                assert_eq!(target(conn(index, role)), Target::Conn(index, role));
            }
            let last = Role::Passive(PASSIVE_SLOTS - 1);
            assert_eq!(target(conn(index, last)), Target::Conn(index, last));
        }
        assert!(index_fits(1 << 40));
        assert!(!index_fits(usize::MAX >> ROLE_BITS));
        for index in [0, 7, 1 << 40] {
            assert!(header_fits(index));
            assert_eq!(target(header(index)), Target::Header(index));
        }
        let last = (HEADER_BASE >> ROLE_BITS) - 1;
        assert!(index_fits(last));
        let top = conn(last, Role::Passive(PASSIVE_SLOTS - 1));
        assert_eq!(
            target(top),
            Target::Conn(last, Role::Passive(PASSIVE_SLOTS - 1))
        );
    }
}
