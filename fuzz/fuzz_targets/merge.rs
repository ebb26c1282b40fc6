//! Fuzz target `merge`: see `agent_init_fuzz::merge` for what it checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| agent_init_fuzz::merge(data));
