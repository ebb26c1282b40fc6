//! Local mode and `seal`: secrets from dotenv files and flags instead of a
//! bundle fetched with a token.
//!
//! - [`dotenv`]: the parser, reading as python-dotenv reads (a differential
//!   test keeps it so), every value checked against PROTOCOL.md §6;
//! - [`load`]: which files local mode reads, and reading them in order;
//! - [`inputs`]: `--secrets-file`, `--secrets` and `--secret-mount` read into
//!   the inputs of the update merge (§6.2), for `seal` and agent-secrets;
//! - [`seal`]: `agent-init seal`, those inputs sealed into a bundle (§5).
//!
//! Nothing here is reached in production mode: with a token, no dotenv file
//! is read.

pub mod dotenv;
pub mod inputs;
pub mod load;
pub mod seal;
