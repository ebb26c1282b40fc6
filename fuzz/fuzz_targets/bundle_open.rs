//! Fuzz target `bundle_open`: see `agent_init_fuzz::bundle_open` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::bundle_open(data));
