#![no_main]

// A request target as a client writes it, resolved and matched against the
// directory's routes; its canonical form must resolve to the same path.
use vakt_event::routes::{EncodedPaths, RequestPath, Target};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = String::from_utf8_lossy(data);
    vakt_fuzz::match_route(&target);
    if let Ok(t) = Target::parse(&target, EncodedPaths::Decode) {
        let canonical = t.path.canonical();
        assert_eq!(
            RequestPath::parse(&canonical, EncodedPaths::Refuse).as_ref(),
            Ok(&t.path),
            "{target:?} -> {canonical:?}"
        );
    }
});
