#![no_main]

// A CSP report body as anyone may post it to `vakt serve`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for content_type in ["application/csp-report", "application/reports+json"] {
        if let Ok(found) = vakt_ingest::csp::violations(content_type, data) {
            for v in found {
                let _ = vakt_ingest::csp::split_url(&v.document);
                let _ = vakt_ingest::csp::split_url(&v.blocked);
            }
        }
    }
});
