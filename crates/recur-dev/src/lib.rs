//! What measures and tests recur without being part of it: the LSTM and
//! encoder benchmarks behind `recur bench lstm` and `recur bench encode`,
//! the load-test client of `recur bench serve`, and the tiny serving setup
//! the service's end-to-end tests run against (`tests/http.rs` here, over
//! real HTTP on loopback). No library crate depends on this one, so the
//! service's dependencies stay the service's.

pub mod encode_bench;
pub mod fixture;
pub mod load;
pub mod lstm_bench;
