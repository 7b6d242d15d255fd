//! Fuzzes a WebSocket text frame, read by a registry (node → registry) and by a client (registry → node)
//! (`netget::registry::fuzzing::ws_frame` says what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netget::registry::fuzzing::ws_frame(data));
