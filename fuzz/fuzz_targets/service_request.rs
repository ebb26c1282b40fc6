//! Fuzz target `service_request`: see `fuzz/src/service.rs` for what it checks.
#![no_main]
#[path = "../src/service.rs"]
mod service;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    service::service_request(data);
});
