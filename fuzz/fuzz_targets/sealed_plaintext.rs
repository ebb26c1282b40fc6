//! Fuzz target `sealed_plaintext`: see `agent_init_fuzz::sealed_plaintext` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::sealed_plaintext(data));
