#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vakt_fuzz::run("zeek", data));
