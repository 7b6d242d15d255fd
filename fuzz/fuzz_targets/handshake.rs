//! Fuzzes the first frame of a session (the hello answering the challenge), then admission
//! (`netget::registry::fuzzing::handshake` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::handshake(data));
