//! Fuzz target `token`: see `agent_init_fuzz::token_parse` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::token_parse(data));
