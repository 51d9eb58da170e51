//! `xml::parse_xml` on arbitrary bytes: it must never panic, and whatever it accepts must
//! survive a round trip through `to_xml` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxedge_core::xml::{parse_xml, parse_xml_with_limit, to_xml};

fuzz_target!(|data: &[u8]| {
    let Ok(map) = parse_xml(data) else {
        return;
    };
    // `to_xml` refuses keys that are not plain ASCII names (`a:b`, `é`, `xmlfoo`…), which
    // the parser may accept; only what it writes has to round-trip.
    let Ok(written) = to_xml(&map) else {
        return;
    };
    // CDATA wrappers make the output longer than the input: lift the size bound.
    match parse_xml_with_limit(written.as_bytes(), usize::MAX) {
        Ok(back) => assert_eq!(
            back,
            map,
            "to_xml output parses to a different map\ninput: {:?}\nwritten: {written:?}",
            String::from_utf8_lossy(data)
        ),
        Err(e) => panic!(
            "to_xml output does not parse: {e}\ninput: {:?}\nwritten: {written:?}",
            String::from_utf8_lossy(data)
        ),
    }
});
