//! Fixtures shared by the integration tests.

use wxedge_core::Params;

/// The API key of WeChat Pay's v2 signing doc example (see vectors.rs for the source).
pub const DOC_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// The parameters of that example.
pub fn doc_params() -> Params {
    [
        ("appid", "wxd930ea5d5a258f4f"),
        ("mch_id", "10000100"),
        ("device_info", "1000"),
        ("body", "test"),
        ("nonce_str", "ibuaiVcKdpRxkhJA"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
