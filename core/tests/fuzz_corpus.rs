//! Every input of the fuzz targets' committed corpus (`fuzz/corpus/<target>`) and every past
//! finding (`fuzz/regressions/<target>`) replayed through the target's own entry point
//! (`netget::registry::fuzzing`), on every test run and on stable Rust: a fix that regresses
//! fails here, not only under a fuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use netget::registry::fuzzing;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            files.push(entry.path());
        }
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no committed inputs for {target}");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn websocket_frames_of_the_corpus_decode_or_are_refused_and_round_trip() {
    replay("ws_frame", fuzzing::ws_frame);
}

#[test]
fn hellos_of_the_corpus_are_admitted_only_when_validly_signed() {
    replay("handshake", fuzzing::handshake);
}

#[test]
fn registration_bodies_of_the_corpus_survive_directory_store_and_wire_unchanged() {
    replay("registration", fuzzing::registration);
}

#[test]
fn configs_of_the_corpus_parse_or_are_refused_with_a_code() {
    replay("config", fuzzing::config);
}

#[test]
fn store_records_of_the_corpus_restore_or_read_as_corruption() {
    replay("store_record", fuzzing::store_record);
}

#[test]
fn replica_frames_of_the_corpus_leave_only_replicas_naming_their_peer() {
    replay("replica", fuzzing::replica);
}
