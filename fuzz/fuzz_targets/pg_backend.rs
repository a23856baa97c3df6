#![no_main]

// A server's byte stream through the PostgreSQL proxy's decoders.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vakt_proxy::pg::decode_backend(data);
});
