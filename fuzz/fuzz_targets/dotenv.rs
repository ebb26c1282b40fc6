//! Fuzz target `dotenv`: see `agent_init_fuzz::dotenv` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::dotenv(data));
