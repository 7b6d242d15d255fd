//! Fuzzes a netget.toml
//! (`netget::registry::fuzzing::config` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::config(data));
