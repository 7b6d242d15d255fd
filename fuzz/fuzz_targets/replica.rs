//! Fuzzes a frame on a replication link from a peer registry, applied to a registry
//! (`netget::registry::fuzzing::replica` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::replica(data));
