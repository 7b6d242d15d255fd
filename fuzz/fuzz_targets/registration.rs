//! Fuzzes an HTTP registration body, through validation, the directory, a store record and the wire
//! (`netget::registry::fuzzing::registration` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::registration(data));
