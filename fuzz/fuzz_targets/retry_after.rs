//! Fuzz target `retry_after`: see `agent_init_fuzz::retry_after` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::retry_after(data));
