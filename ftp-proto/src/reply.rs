//! Typed replies and their wire form.
