//! Fuzzes a row of the store's REST registrations, read back and restored at start
//! (`netget::registry::fuzzing::store_record` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::store_record(data));
