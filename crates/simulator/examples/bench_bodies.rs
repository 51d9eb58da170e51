//! Writes signed unifiedorder bodies, one per line, for `scripts/bench.d/wxsim`'s load
//! tool (wrk cannot sign). Signed by wxedge-core, as a real merchant's would be.
//!
//! Usage: bench_bodies APPID MCH_ID KEY SIGN_TYPE OPENID NOTIFY_URL COUNT

use wxedge_core::pay::{Merchant, UnifiedOrder};
use wxedge_core::{Fen, random};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [appid, mch_id, key, sign_type, openid, notify_url, count] = args.as_slice() else {
        return Err(
            "usage: bench_bodies APPID MCH_ID KEY SIGN_TYPE OPENID NOTIFY_URL COUNT".into(),
        );
    };
    let merchant = Merchant {
        appid: appid.clone(),
        mch_id: mch_id.clone(),
        key: key.clone(),
        sign_type: sign_type.parse()?,
    };
    let prefix = random::alphanumeric(8)?;
    let count: usize = count.parse()?;
    let mut out = String::new();
    for i in 0..count {
        let order = UnifiedOrder {
            body: "wxsim benchmark".into(),
            out_trade_no: format!("B{prefix}{i:012}"),
            total_fee: Fen::new(1 + (i as u64 % 1000)),
            spbill_create_ip: "127.0.0.1".into(),
            notify_url: notify_url.clone(),
            trade_type: Default::default(),
            openid: Some(openid.clone()),
            attach: None,
            time_expire: None,
        };
        out.push_str(&merchant.unified_order_request(&order, &random::nonce_str()?)?);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
